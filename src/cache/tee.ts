// The leader's dispatch handler: a decorator around the forward stage's handler (undici's DecoratorHandler
// pattern) that copies the upstream answer, as it arrives, to the cache owner — status, headers, raw body chunks —
// while the wrapped handler writes it to the client as usual. Only the attempt the wrapped handler accepts is
// copied (a response dropped for a retry never is).
//
// The wrapped handler sees a TeeController instead of undici's: when its client goes away while other requests wait
// for this answer (FOLLOWED), the abort is not passed on — the tee detaches and reads the answer to its end for them.
import { costPico } from '../spend/prices.js'
import type { Dispatcher } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import type { RequestState } from '../server/request-state.js'
import { upstreamForbids } from './key.js'
import { W } from './protocol.js'
import type { CacheCall } from './call.js'
type DispatchController = Dispatcher.DispatchController
type DispatchHandler = Dispatcher.DispatchHandler

/** Response headers never stored: hop-by-hop, framing, and what the proxy writes itself on every answer. */
const UNSTORED = new Set([
  'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'proxy-authenticate',
  'content-length', 'date', 'uwebsockets', 'x-request-id', 'age', 'set-cookie',
])

/** What the wrapped handler (forward's Forward) exposes to the tee. */
export interface Inner extends DispatchHandler {
  readonly s: RequestState
  controller: DispatchController | null
}

export class TeeController implements DispatchController {
  readonly real: DispatchController
  readonly tee: CacheTee

  constructor(real: DispatchController, tee: CacheTee) {
    this.real = real
    this.tee = tee
  }

  get aborted(): boolean {
    return this.real.aborted
  }

  get paused(): boolean {
    return this.real.paused
  }

  get reason(): Error | null {
    return this.real.reason
  }

  abort(reason: Error): void {
    if (this.tee.detach()) return
    this.real.abort(reason)
  }

  pause(): void {
    if (!this.tee.detached) this.real.pause()
  }

  resume(): void {
    this.real.resume()
  }
}

export class CacheTee implements DispatchHandler {
  readonly inner: Inner
  readonly call: CacheCall
  real: DispatchController | null = null
  proxy: TeeController | null = null
  /** an attempt is under way: its end or error is still to come */
  active = false
  /** this attempt's answer is being copied to the owner */
  capturing = false
  /** the client went away; the answer is read to its end for the followers */
  detached = false
  sse = false
  bytes = 0
  announced = -1
  over = false

  constructor(inner: Inner, call: CacheCall) {
    this.inner = inner
    this.call = call
  }

  /** The client's abort while followers wait: keep reading for them. */
  detach(): boolean {
    if (this.detached) return true
    if (!this.call.followed || !this.inner.s.aborted || !this.active || this.call.final) return false
    this.detached = true
    if (this.real !== null && this.real.paused) this.real.resume()
    return true
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.real = controller
    this.proxy = new TeeController(controller, this)
    this.active = true
    this.capturing = false
    this.inner.onRequestStart!(this.proxy, context)
  }

  onResponseStart(controller: DispatchController, status: number, headers: IncomingHttpHeaders, message?: string): void {
    if (controller !== this.real) return this.inner.onResponseStart!(controller, status, headers, message)
    const flat: string[] = []
    for (const k in headers) {
      if (UNSTORED.has(k)) continue
      const v = headers[k]
      if (v === undefined) continue
      if (typeof v === 'string') flat.push(k, v)
      else for (const x of v) flat.push(k, x)
    }
    const ct = headers['content-type']
    const ce = headers['content-encoding']
    const cl = headers['content-length']
    if (!this.detached) {
      this.inner.onResponseStart!(this.proxy!, status, headers, message)
      // the wrapped handler dropped this answer for another attempt: not this request's answer
      if (this.inner.controller !== this.proxy) return
    }
    this.capturing = true
    this.sse = typeof ct === 'string' && ct.startsWith('text/event-stream')
    this.bytes = 0
    this.announced = typeof cl === 'string' ? Number(cl) : -1
    const store = status >= 200 && status < 300 && !upstreamForbids(headers['cache-control']) &&
      (ce === undefined || ce === 'identity') && this.call.store
    this.call.post({ t: W.HEAD, id: this.call.id, key: this.call.key, status, headers: flat, sse: this.sse, store })
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    if (controller === this.real && this.capturing && !(this.over && !this.sse)) {
      this.bytes += chunk.length
      if (!this.over && this.bytes > this.call.rp.maxEntry) {
        this.over = true
        this.call.post({ t: W.OVER, id: this.call.id, key: this.call.key })
      }
      if (!this.over || this.sse) {
        // a copy of exactly this chunk (undici's may be a view into a larger buffer), transferred, not copied again
        const copy = new Uint8Array(chunk)
        this.call.post({ t: W.DATA, id: this.call.id, key: this.call.key, chunk: copy }, copy.buffer)
      }
    }
    if (!this.detached) this.inner.onResponseData!(controller === this.real ? this.proxy! : controller, chunk)
  }

  onResponseEnd(controller: DispatchController, trailers: IncomingHttpHeaders): void {
    if (controller !== this.real) return this.inner.onResponseEnd!(controller, trailers)
    if (!this.detached) this.inner.onResponseEnd!(this.proxy!, trailers)
    this.active = false
    if (!this.capturing || this.call.final) return
    const s = this.inner.s
    // cut short of its Content-Length: a partial answer, never stored nor passed on as whole
    if (this.announced >= 0 && this.bytes !== this.announced) return this.call.fail()
    let usage = -1
    let cost = -1
    if (!this.detached && s.meter !== null) {
      const u = s.meter.usage()
      if (u.source === 'reported' || u.source === 'counted') {
        usage = u.total
        const up = s.upstream
        const price = up === null ? null : s.plan.prices.lookup(up.provider, u.model || s.model)
        if (price !== null) cost = costPico(price, u)
      }
    }
    this.call.end(usage, cost)
  }

  onResponseError(controller: DispatchController, err: Error): void {
    if (controller !== this.real) return this.inner.onResponseError!(controller, err)
    if (!this.detached) this.inner.onResponseError!(this.proxy!, err)
    // the wrapped handler started another attempt (retry, fallback): that one reports
    if (!this.detached && this.inner.controller !== this.proxy && !this.inner.s.finished) {
      this.active = false
      return
    }
    this.active = false
    if (!this.call.final) this.call.fail()
  }
}
