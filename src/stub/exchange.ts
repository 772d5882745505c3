// One request's life in the stub: its body, its knobs, the reply a renderer built, and the delivery of that reply
// with time-to-first-token, tokens-per-second pacing, jitter, backpressure and injected faults. Renderers only
// build strings; everything about time and sockets is here.
import { IncomingMessage, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import { Knobs, type KnobDefaults } from './knobs.js'
import { Rng, hashText, mixSeed } from './prng.js'
import { errorBody, hasRetryAfter } from './provider-errors.js'
import { NOT_FOUND, type Resolved, type Route } from './routes.js'
import { uuid, unseededIds } from './ids.js'

/** The server side of an exchange: defaults in, events out. */
export interface ExchangeHost {
  readonly defaults: KnobDefaults
  /** true while the server closes: connections it ends itself are not client aborts */
  readonly closing: boolean
  /** the request body has been read */
  received(ex: Exchange): void
  aborted(ex: Exchange): void
  backpressure(ex: Exchange, sent: number): void
}

/** http.Server builds these instead of the plain classes, so listeners reach the exchange through a field. */
export class StubRequest extends IncomingMessage {
  exchange: Exchange | null = null
}
export class StubResponse extends ServerResponse<StubRequest> {
  exchange: Exchange | null = null
}

/** Bodies past this are counted, not kept: /__stub/echo can sink a 1 GB upload, 'request' shows the first 16 MiB. */
export const MAX_RETAINED_BODY = 16 * 1024 * 1024

/** /__stub/bytes writes slices of one shared buffer (byte k of a response is k & 0xff), so it allocates nothing. */
const BYTES_CHUNK = 64 * 1024
const PATTERN = Buffer.allocUnsafe(BYTES_CHUNK)
for (let i = 0; i < BYTES_CHUNK; i++) PATTERN[i] = i & 0xff

const EMPTY = Buffer.alloc(0)
const SSE_CACHE_CONTROL = 'no-cache'

type Mode = 'beats' | 'bytes'
/** waiting: before the first byte · flowing: headers sent · done: ended, destroyed or closed */
type Phase = 'waiting' | 'flowing' | 'done'

export class Exchange implements Resolved {
  readonly host: ExchangeHost
  readonly req: StubRequest
  readonly res: StubResponse
  readonly method: string
  readonly url: string
  readonly path: string
  readonly query: string
  route: Route
  /** the route's path argument: a Gemini action or a model id */
  arg: string
  body: Buffer
  bodyBytes: number
  knobs: Knobs | null

  private chunks: Buffer[] | null
  private mode: Mode
  private phase: Phase
  private status: number
  private contentType: string
  private streaming: boolean
  /** the reply as pieces of wire text; beat i is due weights[i] tokens after beat i-1 */
  private beats: string[]
  private weights: number[]
  private next: number
  private bytesTotal: number
  private bytesSent: number
  private timer: NodeJS.Timeout | null
  private dueAt: number
  /** the pacing wait before beat `next` has elapsed */
  private waited: boolean
  private jitterRng: Rng | null
  /** we ended the connection on purpose (reset, cut): not a client abort */
  private selfClosed: boolean

  constructor(host: ExchangeHost, req: StubRequest, res: StubResponse) {
    this.host = host
    this.req = req
    this.res = res
    this.method = req.method ?? 'GET'
    this.url = req.url ?? '/'
    const q = this.url.indexOf('?')
    this.path = q === -1 ? this.url : this.url.slice(0, q)
    this.query = q === -1 ? '' : this.url.slice(q + 1)
    this.route = NOT_FOUND
    this.arg = ''
    this.body = EMPTY
    this.bodyBytes = 0
    this.knobs = null
    this.chunks = null
    this.mode = 'beats'
    this.phase = 'waiting'
    this.status = 200
    this.contentType = ''
    this.streaming = false
    this.beats = []
    this.weights = []
    this.next = 0
    this.bytesTotal = 0
    this.bytesSent = 0
    this.timer = null
    this.dueAt = 0
    this.waited = false
    this.jitterRng = null
    this.selfClosed = false
  }

  // ---- request body ----

  addChunk(chunk: Buffer): void {
    if (this.bodyBytes < MAX_RETAINED_BODY) {
      if (this.chunks === null) this.chunks = [chunk]
      else this.chunks.push(chunk)
    }
    this.bodyBytes += chunk.length
  }

  /** Body complete: joins it and resolves the knobs. */
  endBody(): Knobs {
    const c = this.chunks
    if (c !== null) this.body = c.length === 1 ? c[0] : Buffer.concat(c)
    if (this.body.length > MAX_RETAINED_BODY) this.body = this.body.subarray(0, MAX_RETAINED_BODY)
    this.chunks = null
    return (this.knobs = new Knobs(this.host.defaults, this.req.headers))
  }

  get bodyTruncated(): boolean {
    return this.bodyBytes > MAX_RETAINED_BODY
  }

  // ---- building a reply (renderers) ----

  /** A complete JSON reply; `tokens` is what tokens-per-second pacing charges for it. */
  json(body: string, tokens = 0, status = 200): void {
    this.status = status
    this.contentType = 'application/json'
    this.streaming = false
    this.beats.push(body)
    this.weights.push(tokens)
  }

  /** Starts a streamed reply; fill it with beat() and append(). */
  stream(contentType: string): void {
    this.status = 200
    this.contentType = contentType
    this.streaming = true
  }

  /** Wire text due `tokens` tokens (at the paced rate) after the previous beat; the first is due at TTFT. */
  beat(text: string, tokens: number): void {
    this.beats.push(text)
    this.weights.push(tokens)
  }

  /** Wire text sent together with the last beat. */
  append(text: string): void {
    const last = this.beats.length - 1
    if (last < 0) this.beat(text, 0)
    else this.beats[last] += text
  }

  // ---- ids ----

  /** The PRNG for this reply's ids: seeded per request when the stub is seeded, else process-wide random. */
  idRng(requestSeed: number): Rng {
    return this.knobs !== null && this.knobs.seeded ? new Rng(mixSeed(requestSeed, 0x1d5eed)) : unseededIds
  }

  // ---- delivery ----

  /** Answers a provider-shaped error at once (no TTFT: real rejections are fast). */
  error(status: number, message?: string): void {
    const seed = this.knobs === null ? 0 : this.knobs.seed
    const body = errorBody(this.route.family, status, uuid(this.idRng(mixSeed(seed, hashText(this.url)))), message)
    const headers = ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))]
    if (hasRetryAfter(status)) headers.push('retry-after', '1')
    this.phase = 'done'
    this.res.writeHead(status, headers)
    this.res.end(body)
  }

  /** Destroys the socket with a TCP RST and no response at all. */
  reset(): void {
    this.phase = 'done'
    this.selfClosed = true
    this.req.socket.resetAndDestroy()
  }

  /** A reply of `n` pattern bytes, streamed with backpressure: never more than the socket's buffer is in memory. */
  bytesReply(n: number): void {
    this.mode = 'bytes'
    this.bytesTotal = n
  }

  /** Delivers what the renderer built, paced and faulted by the knobs; no-op when an error was already sent. */
  send(): void {
    if (this.phase !== 'waiting') return
    const k = this.knobs!
    let delay = k.ttftMs + this.jitter()
    if (this.mode === 'beats' && !this.streaming && k.tokensPerSecond > 0) delay += (this.weights[0] * 1000) / k.tokensPerSecond
    if (delay > 0) this.arm(delay)
    else this.start()
  }

  /** The response went away (finished, destroyed by us, or the client left). */
  closed(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer)
      this.timer = null
    }
    if (!this.res.writableFinished && !this.selfClosed && !this.host.closing) this.host.aborted(this)
    this.phase = 'done'
  }

  timerFired(): void {
    this.timer = null
    // libuv's cached loop time can fire a timer up to ~1 ms early; "no byte before TTFT" is a promise tests check
    const left = this.dueAt - performance.now()
    if (left > 0) {
      this.timer = setTimeout(onTimer, Math.ceil(left), this)
      return
    }
    if (this.phase === 'waiting') this.start()
    else this.pump()
  }

  pump(): void {
    if (this.phase !== 'flowing') return
    if (this.mode === 'bytes') this.pumpBytes()
    else this.pumpBeats()
  }

  private arm(delayMs: number): void {
    this.dueAt = performance.now() + delayMs
    this.timer = setTimeout(onTimer, Math.ceil(delayMs), this)
  }

  private jitter(): number {
    const ms = this.knobs!.jitterMs
    if (ms <= 0) return 0
    if (this.jitterRng === null) this.jitterRng = new Rng(mixSeed(this.knobs!.seed, hashText(this.url) ^ this.bodyBytes))
    return this.jitterRng.float() * ms
  }

  private start(): void {
    if (this.phase !== 'waiting') return
    this.phase = 'flowing'
    const res = this.res
    const fault = this.knobs!.fault
    if (this.mode === 'bytes') {
      res.writeHead(200, ['content-type', 'application/octet-stream', 'content-length', String(this.bytesTotal)])
      this.pumpBytes()
      return
    }
    if (this.streaming) {
      res.writeHead(this.status, ['content-type', this.contentType, 'cache-control', SSE_CACHE_CONTROL])
      const k = this.knobs!
      // fast path for benchmarks: nothing to pace, so the whole stream is one write
      if (fault === 'none' && k.tokensPerSecond === 0 && k.jitterMs === 0) {
        this.phase = 'done'
        res.end(this.beats.length === 1 ? this.beats[0] : this.beats.join(''))
        return
      }
      if (fault === 'cut' && this.beats.length === 1) {
        this.cut(this.beats[0].slice(0, this.beats[0].length >> 1))
        return
      }
      this.pumpBeats()
      return
    }
    const body = this.beats[0]
    res.writeHead(this.status, ['content-type', this.contentType, 'content-length', String(Buffer.byteLength(body))])
    switch (fault) {
      case 'stall':
        res.flushHeaders()
        return
      case 'cut':
        this.cut(body.slice(0, body.length >> 1))
        return
      default:
        this.phase = 'done'
        res.end(body)
    }
  }

  private pumpBeats(): void {
    const k = this.knobs!
    const n = this.beats.length
    const cutAt = Math.max(1, n >> 1)
    while (this.next < n) {
      const i = this.next
      if (i > 0) {
        if (k.fault === 'stall') return // headers and the first beat went out; now silence until the client leaves
        if (k.fault === 'cut' && i === cutAt) {
          this.cut('')
          return
        }
        if (!this.waited) {
          const delay = (k.tokensPerSecond > 0 ? (this.weights[i] * 1000) / k.tokensPerSecond : 0) + this.jitter()
          if (delay > 0) {
            this.waited = true
            this.arm(delay)
            return
          }
        }
      }
      this.waited = false
      this.next = i + 1
      if (this.next === n && k.fault !== 'stall') {
        this.phase = 'done'
        this.res.end(this.beats[i])
        return
      }
      if (!this.res.write(this.beats[i])) {
        this.res.once('drain', onDrain)
        return
      }
    }
  }

  private pumpBytes(): void {
    const res = this.res
    const fault = this.knobs!.fault
    const total = this.bytesTotal
    while (this.bytesSent < total) {
      if (this.bytesSent > 0) {
        if (fault === 'stall') return
        if (fault === 'cut' && this.bytesSent >= total / 2) {
          this.cut('')
          return
        }
      }
      const left = total - this.bytesSent
      const chunk = left >= BYTES_CHUNK ? PATTERN : PATTERN.subarray(0, left)
      this.bytesSent += chunk.length
      if (this.bytesSent === total) {
        this.phase = 'done'
        res.end(chunk)
        return
      }
      if (!res.write(chunk)) {
        this.host.backpressure(this, this.bytesSent)
        res.once('drain', onDrain)
        return
      }
    }
    this.phase = 'done'
    res.end()
  }

  /** Sends `tail`, then ends the connection mid-response once it is flushed. */
  private cut(tail: string): void {
    this.phase = 'done'
    this.selfClosed = true
    const socket = this.res.socket
    if (socket === null) return
    // FIN only once the write is done: Node 24 may still hold a write made in this tick in the response's own
    // buffer, and a socket.end() now would send FIN before it (the client got 0 bytes). An empty tail still goes
    // through write(), whose callback comes after what earlier writes queued. The client sees a body shorter than
    // promised.
    this.res.write(tail, () => socket.end(() => socket.destroy()))
  }
}

function onTimer(ex: Exchange): void {
  ex.timerFired()
}

function onDrain(this: StubResponse): void {
  this.exchange?.pump()
}
