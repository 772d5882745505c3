// Stage 7 — cache: the response cache of routes with `cache:` (README "Cache"). After limit and admit, so a hit
// is charged on request limits like any request (and on token limits per cache.charge_tokens, in account). The
// request's key is sent to the cache owner on the main thread (src/cache/owner.ts), which answers:
//   hit        a stored answer: written here, whole (x-cache: HIT, or STALE under stale_while_revalidate)
//   lead       a miss: the request goes upstream and its answer is copied to the owner as it arrives (tee.ts)
//   follow     an identical request is already upstream: its answer is written here as it arrives (x-cache: COALESCED)
//   bypass     the request goes upstream without the cache
// Requests the cache must not see bypass before any message: another method, Cache-Control no-store, a body that
// is not JSON or larger than max_entry, a sampled request under `when: deterministic`.
import { Next, type RequestState } from '../request-state.js'
import { ctx } from '../context.js'
import { account } from './account.js'
import { replyError } from '../reply.js'
import { statusLine } from './stream.js'
import { cacheKey, canonical, clientDirective, deterministic } from '../../cache/key.js'
import { CacheCall, CacheClient, type CacheSink } from '../../cache/call.js'
import type { HitMsg } from '../../cache/protocol.js'
import { createMeter, type UsageMeter } from '../../llm/usage.js'
import type { MessagePort } from 'node:worker_threads'

/** the access line's `cache` value, by Served */
const SERVED_NAME = ['hit', 'stale', 'coalesced'] as const
const X_CACHE = ['HIT', 'STALE', 'COALESCED'] as const
const EMPTY = Buffer.alloc(0)

export function cache(s: RequestState, then: (s: RequestState) => void): Next {
  const rp = s.plan.cache.byRoute[s.route!.index]
  const client = ctx.cache
  if (rp === null || client === null) return Next.CONTINUE
  if (!(s.method === 'POST' ? rp.post : s.method === 'GET' && rp.get)) return bypass(s)
  const cc = clientDirective(header(s, 'cache-control'))
  if (cc === 'no-store') return bypass(s)
  let json: unknown = null
  const body = s.body
  if (body === null) {
    // a body streamed through (not an LLM route) is never seen whole: only bodiless requests have a key
    if (s.contentLength > 0 || s.chunked) return bypass(s)
  } else if (body.length > rp.maxEntry) {
    return bypass(s)
  } else if (body.length > 0) {
    json = s.json
    if (json === undefined) {
      try {
        json = JSON.parse(body.toString('utf8'))
      } catch {
        return bypass(s)
      }
    }
  }
  if (rp.deterministic && !deterministic(json)) return bypass(s)
  const scope = rp.scope === 'global' ? '' : rp.scope === 'org' && s.org !== '' ? `org:${s.org}` : s.keyId !== '' ? `key:${s.keyId}` : `ip:${s.clientIp}`
  const path = s.query === '' ? s.url : `${s.url}?${s.query}`
  const call = new CacheCall(s, rp, cacheKey(s.method, path, scope, canonical(json, s.plan.cache.ignore)), scope, client, then)
  call.fresh = cc === 'no-cache'
  s.cache = call
  client.get(call)
  return Next.PENDING
}

function bypass(s: RequestState): Next {
  s.cacheStatus = 'bypass'
  addHeader(s, 'x-cache', 'BYPASS')
  return Next.CONTINUE
}

function addHeader(s: RequestState, name: string, value: string): void {
  if (s.responseHeaders === null) s.responseHeaders = [name, value]
  else s.responseHeaders.push(name, value)
}

function header(s: RequestState, name: string): string {
  const h = s.headers
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1]
  return ''
}

/** The owner's answers, applied to the request (one object per worker). */
class Sink implements CacheSink {
  hit(call: CacheCall, m: HitMsg): void {
    const s = call.s
    s.cacheStatus = SERVED_NAME[m.served]
    if (s.finished || s.aborted) return
    chargeFor(s, m.usage)
    s.status = m.status
    s.ttfbMs = performance.now() - s.startMs
    const strip = m.sse && s.stripUsage ? stripper(s) : null
    const res = s.res
    if (m.sse && call.rp.paced && m.times.length === m.chunks.length && m.chunks.length > 0) {
      res.cork(() => writeHead(s, m.status, m.headers, X_CACHE[m.served], m.age))
      return new PacedReplay(s, m, strip).next()
    }
    res.cork(() => {
      writeHead(s, m.status, m.headers, X_CACHE[m.served], m.age)
      if (!m.sse && m.chunks.length === 1) {
        s.bytesOut = m.chunks[0].byteLength
        res.end(m.chunks[0])
        return
      }
      for (const c of m.chunks) {
        const out = strip === null ? c : strip.write(asBuffer(c))
        if (out.byteLength === 0) continue
        s.bytesOut += out.byteLength
        res.write(out)
      }
      const tail = strip === null ? EMPTY : strip.end()
      s.bytesOut += tail.length
      res.end(tail.length > 0 ? tail : undefined)
    })
    s.finished = true
    account(s)
  }

  lead(call: CacheCall): void {
    const s = call.s
    s.cacheStatus = 'miss'
    // the client left while the owner answered: the call goes to a follower, if any came meanwhile
    if (s.finished || s.aborted) return call.fail()
    addHeader(s, 'x-cache', 'MISS')
    call.then(s)
  }

  bypass(call: CacheCall): void {
    const s = call.s
    if (s.finished || s.aborted) return
    s.cache = null
    bypass(s)
    call.then(s)
  }

  head(call: CacheCall, status: number, headers: string[]): void {
    const s = call.s
    s.cacheStatus = 'coalesced'
    if (s.finished || s.aborted || s.headersSent) return
    s.status = status
    s.ttfbMs = performance.now() - s.startMs
    if (s.stripUsage) call.strip = stripper(s)
    s.res.cork(() => writeHead(s, status, headers, 'COALESCED', 0))
  }

  data(call: CacheCall, chunk: Uint8Array): void {
    const s = call.s
    if (s.finished || s.aborted) return
    const out = call.strip === null ? chunk : call.strip.write(asBuffer(chunk))
    if (out.byteLength === 0) return
    s.bytesOut += out.byteLength
    const res = s.res
    res.cork(() => res.write(out))
  }

  end(call: CacheCall, usage: number): void {
    const s = call.s
    if (s.finished || s.aborted) return
    chargeFor(s, usage)
    const tail = call.strip === null ? EMPTY : call.strip.end()
    s.bytesOut += tail.length
    s.finished = true
    const res = s.res
    res.cork(() => res.end(tail.length > 0 ? tail : undefined))
    account(s)
  }

  fail(call: CacheCall): void {
    const s = call.s
    if (s.finished || s.aborted) return
    s.errorDetail = 'the coalesced upstream answer failed'
    if (!s.headersSent) return void replyError(s, 'LEAKY_UPSTREAM_RESET')
    // the same ending an SSE client of the leader gets (stream.ts failStream)
    s.errorCode = 'LEAKY_UPSTREAM_RESET'
    s.finished = true
    const res = s.res
    res.cork(() => res.end('event: error\ndata: {"error":{"message":"upstream stream failed","type":"upstream_error","code":"LEAKY_UPSTREAM_RESET"}}\n\n'))
    account(s)
  }
}

/** replay_pace: original — a stored stream written with the gaps it first came with (one timer at a time). */
class PacedReplay {
  readonly s: RequestState
  readonly m: HitMsg
  readonly strip: UsageMeter | null
  readonly start = performance.now()
  readonly tick: () => void
  readonly write: () => void
  i = 0
  elapsed = 0

  constructor(s: RequestState, m: HitMsg, strip: UsageMeter | null) {
    this.s = s
    this.m = m
    this.strip = strip
    this.tick = () => this.next()
    this.write = () => this.due()
  }

  next(): void {
    const s = this.s
    // the client left: clientAborted has accounted the request
    if (s.finished || s.aborted) return
    this.elapsed = performance.now() - this.start
    s.res.cork(this.write)
    if (this.i < this.m.chunks.length) {
      setTimeout(this.tick, this.m.times[this.i] - this.elapsed)
      return
    }
    s.finished = true
    account(s)
  }

  /** Inside cork: every chunk that is due, and the end after the last. */
  due(): void {
    const { s, m, strip } = this
    const res = s.res
    while (this.i < m.chunks.length && m.times[this.i] <= this.elapsed) {
      const c = m.chunks[this.i++]
      const out = strip === null ? c : strip.write(asBuffer(c))
      if (out.byteLength === 0) continue
      s.bytesOut += out.byteLength
      res.write(out)
    }
    if (this.i < m.chunks.length) return
    const tail = strip === null ? EMPTY : strip.end()
    s.bytesOut += tail.length
    res.end(tail.length > 0 ? tail : undefined)
  }
}

/** Tokens a cached or coalesced answer charges on token limits: its own (or the estimate when unknown), or none. */
function chargeFor(s: RequestState, usage: number): void {
  s.cacheTokens = s.plan.cache.chargeTokens ? (usage >= 0 ? usage : s.costTokens) : 0
}

/** An SSE answer stored with the usage chunk the proxy asked for: this client did not ask for it. */
function stripper(s: RequestState): UsageMeter | null {
  if (s.shape === null || s.shape === 'other') return null
  return createMeter(s.shape, { stream: true, stripUsageChunk: true, model: s.model, promptTokens: s.promptTokens, lazyPrompt: s.lazyPrompt })
}

function asBuffer(c: Uint8Array): Buffer {
  return Buffer.from(c.buffer, c.byteOffset, c.byteLength)
}

function writeHead(s: RequestState, status: number, headers: string[], xCache: string, age: number): void {
  const res = s.res
  res.writeStatus(statusLine(status))
  for (let i = 0; i < headers.length; i += 2) res.writeHeader(headers[i], headers[i + 1])
  res.writeHeader('x-request-id', s.requestId)
  const extra = s.responseHeaders
  if (extra !== null) for (let i = 0; i < extra.length; i += 2) res.writeHeader(extra[i], extra[i + 1])
  res.writeHeader('x-cache', xCache)
  if (age > 0) res.writeHeader('age', String(age))
  s.headersSent = true
}

/** This worker's connection to the cache owner (worker.ts, at start). */
export function connectCache(port: MessagePort | null): CacheClient | null {
  return port === null ? null : new CacheClient(port, new Sink())
}
