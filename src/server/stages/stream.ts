// Stage 8 — stream: relays the one upstream response forward accepted to the client, and reads its token usage on
// the way (the usage meter lives here, with the bytes it reads). Forward owns one ResponseStream per request and
// hands it each callback of the attempt it keeps; the stream calls nothing but account, once, when the response
// ends. Status and headers go to the client as soon as the upstream sends them; body chunks follow as they arrive, with backpressure both ways: when uWS cannot take a
// chunk, the upstream read is paused (controller.pause) until uWS says the socket is writable again (onWritable).
// uWS never buffers more than the one chunk it refused, so a slow reader costs a bounded amount of memory.
import type { Dispatcher } from 'undici'
type DispatchController = Dispatcher.DispatchController
type DispatchHandler = Dispatcher.DispatchHandler
import type { IncomingHttpHeaders } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { RequestState } from '../request-state.js'
import { replyError } from '../reply.js'
import { account } from './account.js'
import { createMeter, type UsageMeter } from '../../llm/usage.js'
import type { ErrorCode } from '../../errors.js'
import { ContentDecoder, codingOf, type DecodeSink } from '../content-coding.js'
import { ctx } from '../context.js'
import { isTlsError } from '../../upstream/tls.js'
import type { ResponseTranslator } from '../../translate/openai-out.js'

/** Response headers never copied from the upstream: hop-by-hop, and the framing and date uWS writes itself. */
const DROP = new Set([
  'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'proxy-authenticate',
  'content-length', 'date', 'uwebsockets',
])

/** Start reading usage from the response of an LLM request; only successful responses carry usage. */
function startMetering(s: RequestState, status: number, sse: boolean): UsageMeter | null {
  if (s.shape === null || s.shape === 'other' || status < 200 || status >= 300) return null
  s.meter = createMeter(s.shape, { stream: sse, stripUsageChunk: s.stripUsage && sse, model: s.model, promptTokens: s.promptTokens,
    lazyPrompt: s.lazyPrompt })
  return s.meter
}

const statusLines = new Map<number, string>()
export function statusLine(code: number): string {
  let l = statusLines.get(code)
  if (l === undefined) statusLines.set(code, (l = `${code} ${STATUS_CODES[code] ?? 'Unknown'}`))
  return l
}

export class ResponseStream implements DispatchHandler, DecodeSink {
  readonly s: RequestState
  controller: DispatchController | null = null
  /** response body length announced by the upstream, or -1 (chunked to the client) */
  total = -1
  bodyless = false
  sse = false
  meter: UsageMeter | null = null
  /** a metered response that came compressed: its decoded bytes go to the meter and the client (content-coding.ts) */
  decoder: ContentDecoder | null = null
  /** zlib's input buffer is full: the upstream stays paused until it drains */
  decoderFull = false
  /** a chunk uWS refused (tryEnd mode) and the write offset it started at, resent from onWritable */
  pending: Buffer | null = null
  pendingOffset = 0
  chunk: Buffer | null = null
  ended = false
  /** a models route's answer from a provider that does not speak OpenAI: rewritten on its way (src/translate/) */
  tr: ResponseTranslator | null = null
  /** upstream response headers not yet written to the client */
  head: IncomingHttpHeaders | null = null
  readonly writeCorked: () => void
  readonly headCorked: () => void
  readonly writable: (offset: number) => boolean

  constructor(s: RequestState) {
    this.s = s
    this.writeCorked = () => this.doWrite()
    this.headCorked = () => this.writeHead()
    this.writable = (offset) => this.onWritable(offset)
  }

  onRequestStart(controller: DispatchController): void {
    this.controller = controller
    this.s.controller = controller
    if (this.s.aborted) controller.abort(new Error('client closed the connection'))
  }

  onResponseStart(_controller: DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    const s = this.s
    s.status = statusCode
    s.ttfbMs = performance.now() - s.startMs
    this.bodyless = s.method === 'HEAD' || statusCode === 204 || statusCode === 304
    const ct = headers['content-type']
    this.sse = typeof ct === 'string' && ct.startsWith('text/event-stream')
    this.meter = startMetering(s, statusCode, this.sse)
    if (s.modelCall !== null) this.translate(headers, statusCode)
    if (this.meter !== null && !this.bodyless && headers['content-encoding'] !== undefined) this.decodeFor(this.meter, headers)
    const cl = headers['content-length']
    // a meter may drop bytes (the injected usage chunk), a decoder changes them all: then the length is no longer
    // the upstream's
    if (typeof cl === 'string' && (this.meter === null || !this.meter.rewrites) && this.decoder === null && this.tr === null) this.total = Number(cl)
    this.head = headers
    // A response with a known length gets its status and headers in the same cork (one send) as its first body
    // bytes, or its end: a separate cork costs a second sendto per small response (bench/README.md, −15 % CPU).
    // A stream (chunked, SSE) sends them at once: its client should see the status before the first token. A decoded
    // body that is no SSE stream waits for its first decoded bytes instead: one that decodes to nothing (garbage,
    // a wrong Content-Encoding) can then still be answered a clean 502.
    if (this.total < 0 && !this.bodyless && (this.decoder === null || this.sse)) s.res.cork(this.headCorked)
  }

  /** The answer is translated (its length changes): the client gets it chunked, typed as OpenAI's would be. */
  translate(headers: IncomingHttpHeaders, status: number): void {
    this.tr = this.s.modelCall!.translator(this.s, status, this.sse)
    if (this.tr !== null) headers['content-type'] = this.sse && status < 300 ? 'text/event-stream' : 'application/json'
  }

  /**
   * A compressed answer on a metered route. A coding zlib decodes is decoded toward the client (the header goes);
   * any other is relayed as it came, unread, and its usage is unknown — never silently zero.
   */
  decodeFor(meter: UsageMeter, headers: IncomingHttpHeaders): void {
    const coding = codingOf(headers['content-encoding'])
    if (coding === 'identity') return
    if (coding === 'unknown') {
      meter.unreadable()
      this.meter = null
      return
    }
    this.decoder = new ContentDecoder(coding, this)
    delete headers['content-encoding']
  }

  /** Status line and headers, inside a cork; once. */
  writeHead(): void {
    const head = this.head
    if (head === null) return
    this.head = null
    const s = this.s
    const res = s.res
    res.writeStatus(statusLine(s.status))
    const conn = head.connection
    const listed = typeof conn === 'string' ? conn.toLowerCase() : ''
    for (const k in head) {
      if (DROP.has(k) || (listed !== '' && listed.includes(k))) continue
      const v = head[k]
      if (v === undefined) continue
      if (typeof v === 'string') res.writeHeader(k, v)
      else for (const x of v) res.writeHeader(k, x)
    }
    res.writeHeader('x-request-id', s.requestId)
    const extra = s.responseHeaders
    if (extra !== null) for (let i = 0; i < extra.length; i += 2) res.writeHeader(extra[i], extra[i + 1])
    s.headersSent = true
    if (this.bodyless) return
    // registering onWritable up front matters: without it uWS cuts the stream ~10 s after its first backpressure
    res.onWritable(this.writable)
  }

  onResponseData(controller: DispatchController, data: Buffer): void {
    const s = this.s
    if (s.finished || this.bodyless) return
    if (this.decoder !== null) {
      if (!this.decoder.write(data)) {
        this.decoderFull = true
        controller.pause()
      }
      return
    }
    let chunk = this.meter === null ? data : this.meter.write(data)
    if (this.tr !== null) chunk = this.tr.write(chunk)
    if (chunk.length === 0) return
    s.bytesOut += chunk.length
    this.chunk = chunk
    s.res.cork(this.writeCorked)
    if (this.pending !== null || this.chunk !== null) controller.pause()
  }

  /** Decoded bytes of a compressed answer: metered and written like any chunk; the client's backpressure pauses both. */
  decoded(data: Buffer): void {
    const s = this.s
    if (s.finished) return
    let chunk = this.meter === null ? data : this.meter.write(data)
    if (this.tr !== null) chunk = this.tr.write(chunk)
    if (chunk.length === 0) return
    s.bytesOut += chunk.length
    this.chunk = chunk
    s.res.cork(this.writeCorked)
    if (this.chunk !== null) {
      this.decoder!.pause()
      this.controller?.pause()
    }
  }

  drained(): void {
    this.decoderFull = false
    if (this.chunk === null && this.controller !== null && this.controller.paused) this.controller.resume()
  }

  decodeEnded(): void {
    this.finish()
  }

  /**
   * The compressed body stopped decoding (corrupt, or cut short): the client keeps what decoded — an SSE client
   * gets a closing error event, any other response is cut, or answered 502 when nothing was sent — and usage is
   * counted from what decoded (tokens_source: partial). One log line per failed response.
   */
  decodeFailed(err: Error): void {
    const s = this.s
    this.meter?.fail()
    ctx.logger.warn({ msg: 'response does not decode', req_id: s.requestId, upstream: s.upstream?.name, coding: this.decoder!.coding, error: err.message })
    if (!s.finished && !s.aborted) {
      s.errorDetail = `${this.decoder!.coding} body does not decode: ${err.message}`
      this.failStream('LEAKY_UPSTREAM_INVALID')
    }
    // after the reply: the abort comes back through onResponseError, which then finds the request finished
    if (this.controller !== null && !this.controller.aborted) this.controller.abort(err)
  }

  /** Runs inside cork. Leaves `chunk` set when uWS reported backpressure (chunked mode) so the caller pauses. */
  doWrite(): void {
    const res = this.s.res
    if (this.head !== null) this.writeHead()
    const chunk = this.chunk!
    if (this.total >= 0) {
      const offset = res.getWriteOffset()
      const [ok, done] = res.tryEnd(chunk, this.total)
      if (done) this.done()
      if (!ok && !done) {
        this.pending = chunk
        this.pendingOffset = offset
      }
      this.chunk = null
    } else if (res.write(chunk)) {
      this.chunk = null
    }
    // write() false: uWS has queued the chunk itself; keep `chunk` non-null only as the signal to pause
  }

  onWritable(offset: number): boolean {
    const s = this.s
    if (s.finished) return true
    if (this.pending !== null) {
      const rest = this.pending.subarray(offset - this.pendingOffset)
      const [ok, done] = s.res.tryEnd(rest, this.total)
      if (done) {
        this.pending = null
        this.done()
        // undici holds back onResponseEnd while paused: resume so it arrives and the socket returns to the pool
        this.controller?.resume()
        return true
      }
      if (!ok) return false
      this.pending = null
    }
    this.chunk = null
    this.decoder?.resume()
    if (this.controller !== null && this.controller.paused && !this.decoderFull) this.controller.resume()
    return true
  }

  onResponseEnd(): void {
    if (this.decoder !== null) return this.decoder.end()
    this.finish()
  }

  /** The body is complete: end the client's response the way its framing needs, then account. */
  finish(): void {
    const s = this.s
    if (this.ended) {
      // the body went out whole through tryEnd before undici's end: the meter still has to read what it kept (a
      // JSON body's reported usage); nothing it returns can be sent any more, and a JSON meter returns nothing
      if (this.meter !== null) this.meter.end()
      return account(s)
    }
    if (s.finished) return
    let tail = this.meter === null ? null : this.meter.end()
    if (this.tr !== null) tail = translatedTail(this.tr, tail)
    const res = s.res
    s.finished = true
    if (this.bodyless) {
      res.cork(() => {
        this.writeHead()
        // HEAD announces the length a GET would have; uWS's endWithoutBody(n) leaves the response pending (a uWS
        // bug, UWS-FACTS X2), so the header is written by hand
        if (s.method === 'HEAD' && this.total >= 0) res.writeHeader('content-length', String(this.total))
        res.endWithoutBody()
      })
    } else if (this.total >= 0) {
      // tryEnd reports done on the last byte, so only an empty body gets here cleanly; ending short of the
      // announced Content-Length is a broken upstream, and cutting is the only honest signal left
      if (s.bytesOut === this.total) {
        res.cork(() => {
          this.writeHead()
          res.end()
        })
      } else if (this.head !== null) {
        // nothing reached the client yet: it can still get a clean 502
        s.finished = false
        replyError(s, 'LEAKY_UPSTREAM_INVALID')
        return
      } else {
        s.errorCode = 'LEAKY_UPSTREAM_INVALID'
        res.close()
      }
    } else {
      if (tail !== null && tail.length > 0) s.bytesOut += tail.length
      res.cork(() => {
        // a decoded body that decoded to no bytes still has its headers to write
        if (this.head !== null) this.writeHead()
        res.end(tail !== null && tail.length > 0 ? tail : undefined)
      })
    }
    account(s)
  }

  onResponseError(_controller: DispatchController | undefined, err: Error): void {
    const s = this.s
    this.decoder?.destroy()
    if (s.aborted || s.finished) {
      if (!s.accounted) account(s)
      return
    }
    s.errorDetail = err.message
    this.failStream(upstreamErrorCode(err))
  }

  /** The response cannot go on: an SSE stream under way ends with an error event, others are cut or answered. */
  failStream(code: ErrorCode): void {
    const s = this.s
    if (s.headersSent && this.sse && this.pending === null) {
      // an SSE client gets a final error event and a clean end of stream, not a dangling connection
      s.errorCode = code
      s.finished = true
      const res = s.res
      if (this.tr !== null) {
        const last = this.tr.fail(code)
        res.cork(() => res.end(last))
        account(s)
        return
      }
      res.cork(() => res.end(`event: error\ndata: {"error":{"message":"upstream stream failed","type":"upstream_error","code":"${code}"}}\n\n`))
      account(s)
      return
    }
    replyError(s, code)
  }

  done(): void {
    this.ended = true
    this.s.finished = true
  }
}

/** The last of a translated answer: what the meter held back, then the translator's end. */
function translatedTail(tr: ResponseTranslator, held: Buffer | null): Buffer {
  const a = held !== null && held.length > 0 ? tr.write(held) : null
  const b = tr.end()
  return a === null || a.length === 0 ? b : Buffer.concat([a, b])
}

export function upstreamErrorCode(err: Error): ErrorCode {
  const code = (err as { code?: string }).code ?? ''
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'LEAKY_UPSTREAM_TIMEOUT'
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EAI_AGAIN':
    case 'ENOENT':
      return 'LEAKY_UPSTREAM_CONNECT'
    case 'UND_ERR_RESPONSE_EXCEEDED_MAX_SIZE':
    case 'UND_ERR_INFO':
      return 'LEAKY_UPSTREAM_INVALID'
    default:
      if (code.startsWith('HPE_')) return 'LEAKY_UPSTREAM_INVALID'
      if (isTlsError(code)) return 'LEAKY_UPSTREAM_TLS'
      return 'LEAKY_UPSTREAM_RESET'
  }
}
