// Stage 1 — accept: copy what the request needs out of uWS's HttpRequest (valid only until the handler returns),
// enforce framing and size rules uWS does not, and decide the client IP, request id and trace context.
import type { HttpRequest } from 'uWebSockets.js'
import { randomFillSync } from 'node:crypto'
import { Next, type RequestState } from '../request-state.js'
import { replyError, clientAborted } from '../reply.js'
import { normalizePath } from '../path.js'
import { headSample, invalidTraceparent } from '../../tracing/hooks.js'

/** Never forwarded: hop-by-hop (RFC 9110 §7.6.1) and what the proxy sets itself. */
const DROP = new Set([
  'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'proxy-authenticate',
  'proxy-authorization', 'host', 'content-length', 'expect', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host',
  'x-request-id', 'traceparent', 'forwarded',
])

// uWS's forEach needs a callback; one module-level function writing into module-level slots avoids a closure per
// request (the handler is synchronous, so the slots cannot be shared by two requests at once).
let cur: string[] = []
let curBytes = 0
let clCount = 0
let connectionValue = ''
function collect(k: string, v: string): void {
  cur.push(k, v)
  curBytes += k.length + v.length + 4
  if (k === 'content-length') clCount++
  else if (k === 'connection') connectionValue = v
}

export function accept(s: RequestState, req: HttpRequest): Next {
  const res = s.res
  res.onAborted(() => clientAborted(s))
  s.method = req.getCaseSensitiveMethod()
  s.url = req.getUrl()
  s.query = req.getQuery() ?? ''
  s.clientIp = peerAddress(res.getRemoteAddress())
  if (poisonedPeer !== '' && poisonedPeer === s.clientIp) {
    // the bytes behind a request refused for its framing were parsed by uWS as a further request on the same
    // connection, in the same read: that is exactly a smuggled request. It is never answered nor forwarded; the
    // refusal's own Connection: close ends the socket right after the 400 is flushed (a close() here would drop it)
    s.finished = true
    s.errorCode = 'LEAKY_BAD_REQUEST'
    // by the next turn the 400 has been handed to the kernel, and a normal close still delivers it
    setImmediate(() => s.aborted || res.close())
    return Next.REPLIED
  }
  cur = []
  curBytes = s.url.length + s.query.length + s.method.length + 12
  clCount = 0
  connectionValue = ''
  req.forEach(collect)
  const raw = cur
  cur = []
  const plan = s.plan

  if (curBytes > plan.maxHeader) return replyError(s, 'LEAKY_HEADERS_TOO_LARGE')
  if (clCount > 1) return refuseFraming(s, 'LEAKY_DUPLICATE_CONTENT_LENGTH')
  const te = req.getHeader('transfer-encoding')
  if (te !== '') {
    // uWS treats any Transfer-Encoding as chunked; an upstream could read "gzip, chunked" differently: refuse it
    if (te.toLowerCase() !== 'chunked') return refuseFraming(s, 'LEAKY_BAD_TRANSFER_ENCODING')
    s.chunked = true
  }
  const cl = req.getHeader('content-length')
  if (cl !== '') {
    s.contentLength = Number(cl)
    if (s.contentLength > plan.maxBody) return replyError(s, 'LEAKY_BODY_TOO_LARGE', true)
  }
  s.host = req.getHeader('host')

  const id = req.getHeader('x-request-id')
  s.requestId = id !== '' && id.length <= 128 && SAFE_ID.test(id) ? id : newRequestId()
  startTrace(s, req.getHeader('traceparent'), req)
  s.forwardedFor = forwardedFor(s, req.getHeader('x-forwarded-for'))

  // hop-by-hop removal: the fixed set plus whatever the client's Connection header names
  const extra = connectionValue === '' ? null : connectionValue.toLowerCase().split(',').map((x) => x.trim())
  const out = s.headers
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]
    if (DROP.has(k) || (extra !== null && extra.includes(k))) continue
    out.push(k, raw[i + 1])
  }
  // routing and the upstream see the normalised path (path.ts); the access line too
  const path = normalizePath(s.url, plan.path)
  if (path === null) return replyError(s, 'LEAKY_BAD_PATH')
  s.url = path
  return Next.CONTINUE
}

// uWS goes on parsing a connection's buffered bytes after a response that closes it, and calls the handler for
// each further request in that read before any timer runs. After a framing refusal, requests from the same peer
// are dropped until the next turn of the event loop (setImmediate): that covers exactly the bytes of that read.
// uWS exposes no connection identity, so the peer address is the narrowest key available; another connection from
// the same address in that same turn is dropped too (it may retry), which is the safe side of the trade.
let poisonedPeer = ''
function clearPoison(): void {
  poisonedPeer = ''
}

function refuseFraming(s: RequestState, code: 'LEAKY_DUPLICATE_CONTENT_LENGTH' | 'LEAKY_BAD_TRANSFER_ENCODING'): Next {
  if (poisonedPeer === '') setImmediate(clearPoison)
  poisonedPeer = s.clientIp
  return replyError(s, code, true)
}

const SAFE_ID = /^[\x21-\x7e]+$/

// Request ids and trace ids come from one pre-filled random buffer: a crypto call per request costs more than the
// rest of accept together.
const pool = Buffer.alloc(4096)
let poolOff = pool.length
function randomHex(bytes: number): string {
  if (poolOff + bytes > pool.length) {
    randomFillSync(pool)
    poolOff = 0
  }
  const s = pool.toString('hex', poolOff, poolOff + bytes)
  poolOff += bytes
  return s
}

function newRequestId(): string {
  return randomHex(12)
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const ZERO_TRACE = '00000000000000000000000000000000'
const ZERO_SPAN = '0000000000000000'

/**
 * W3C trace context: continue the client's trace with a new span id for our hop, or start one. A traceparent that
 * does not parse (or has all-zero ids) is replaced by a new trace, never refused; with tracing on it is counted and
 * the sampled flag sent upstream is our own sampling decision (src/tracing/hooks.ts).
 */
function startTrace(s: RequestState, header: string, req: HttpRequest): void {
  const m = header === '' ? null : TRACEPARENT.exec(header)
  s.spanId = randomHex(8)
  let flags = '01'
  let parentFlags = -1
  if (m !== null && m[1] !== ZERO_TRACE && m[2] !== ZERO_SPAN) {
    s.traceId = m[1]
    s.parentSpanId = m[2]
    flags = m[3]
    parentFlags = parseInt(flags, 16)
  } else {
    if (header !== '') invalidTraceparent(s)
    s.traceId = randomHex(16)
  }
  const t = s.plan.tracing
  if (t !== null) flags = headSample(s, t, parentFlags, req.getHeader('tracestate'))
  s.traceparent = `00-${s.traceId}-${s.spanId}-${flags}`
}

// ---- client address and trusted proxies ----

export interface TrustPlan {
  v4: Array<[number, number]> // [network, mask]
  v6: Array<[Uint8Array, number]>
  any: boolean
}

export function compileTrust(cidrs: string[]): TrustPlan {
  const plan: TrustPlan = { v4: [], v6: [], any: cidrs.length > 0 }
  for (const c of cidrs) {
    const [addr, bitsText] = c.split('/')
    if (addr.includes(':')) {
      plan.v6.push([parseV6(addr), bitsText === undefined ? 128 : Number(bitsText)])
    } else {
      const bits = bitsText === undefined ? 32 : Number(bitsText)
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
      plan.v4.push([(parseV4(addr) & mask) >>> 0, mask])
    }
  }
  return plan
}

function parseV4(a: string): number {
  const p = a.split('.')
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0
}

function parseV6(a: string): Uint8Array {
  const out = new Uint8Array(16)
  const [head, tail] = a.includes('::') ? a.split('::') : [a, '']
  const h = head === '' ? [] : head.split(':')
  const t = tail === '' ? [] : tail.split(':')
  const groups = [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t]
  for (let i = 0; i < 8; i++) {
    const g = parseInt(groups[i] || '0', 16)
    out[i * 2] = g >> 8
    out[i * 2 + 1] = g & 0xff
  }
  return out
}

export function isTrusted(plan: TrustPlan, ip: string): boolean {
  if (!plan.any) return false
  if (ip.includes(':')) {
    const b = parseV6(ip)
    outer: for (const [net, bits] of plan.v6) {
      for (let i = 0; i < 16; i++) {
        const take = Math.max(0, Math.min(8, bits - i * 8))
        if (take === 0) break
        const mask = (0xff << (8 - take)) & 0xff
        if ((b[i] & mask) !== (net[i] & mask)) continue outer
      }
      return true
    }
    return false
  }
  const v = parseV4(ip)
  for (const [net, mask] of plan.v4) if (((v & mask) >>> 0) === net) return true
  return false
}

/**
 * The X-Forwarded-For sent upstream, and the client IP limits are scoped by. A client's own X-Forwarded-For is
 * believed only when the peer is a trusted proxy: then the client is the right-most address not itself trusted.
 */
function forwardedFor(s: RequestState, xff: string): string {
  const peer = s.clientIp
  if (xff === '' || !isTrusted(s.plan.trust, peer)) return peer
  const hops = xff.split(',')
  for (let i = hops.length - 1; i >= 0; i--) {
    const h = hops[i].trim()
    if (h !== '' && !isTrusted(s.plan.trust, h)) {
      s.clientIp = h
      break
    }
  }
  return `${xff}, ${peer}`
}

/** uWS gives 4 raw bytes for IPv4 and 16 for IPv6; IPv4 peers on a dual-stack socket come IPv4-mapped. */
export function peerAddress(ab: ArrayBuffer): string {
  const b = new Uint8Array(ab)
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`
  if (b.length !== 16) return ''
  let mapped = b[10] === 0xff && b[11] === 0xff
  for (let i = 0; mapped && i < 10; i++) if (b[i] !== 0) mapped = false
  if (mapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16))
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::')
}
