// The worker side of the cache: one CacheClient per worker thread (its MessagePort to the owner) and one CacheCall
// per request on a cached route, which knows the request's key and its role — waiting for the owner's answer,
// leading the upstream call, or following another request's call.
import type { MessagePort } from 'node:worker_threads'
import type { RequestState } from '../server/request-state.js'
import type { RouteCachePlan } from './plan.js'
import { O, W, type HitMsg, type ToOwner, type ToWorker } from './protocol.js'
import type { CacheTee } from './tee.js'
import type { UsageMeter } from '../llm/usage.js'

export const enum Role {
  /** asked the owner, no answer yet — or following a leader */
  WAIT = 0,
  LEAD = 1,
  /** answered, bypassed, or gone: nothing more to tell the owner */
  DONE = 2,
}

/** What the owner's answers do to a request: written by the cache stage (stages/cache.ts). */
export interface CacheSink {
  hit(call: CacheCall, m: HitMsg): void
  lead(call: CacheCall): void
  bypass(call: CacheCall): void
  head(call: CacheCall, status: number, headers: string[]): void
  data(call: CacheCall, chunk: Uint8Array): void
  end(call: CacheCall, usage: number): void
  fail(call: CacheCall): void
}

export class CacheCall {
  readonly s: RequestState
  readonly rp: RouteCachePlan
  readonly key: string
  readonly scope: string
  readonly client: CacheClient
  /** the pipeline's next step once the request may go upstream (lead or bypass) */
  readonly then: (s: RequestState) => void
  id = 0
  role = Role.WAIT
  /** Cache-Control no-cache from the client: not served from the cache, but its answer is stored */
  fresh = false
  /** the answer may be stored (false: the client said no-store — such requests bypass before a call exists) */
  store = true
  /** other requests wait for this leader's answer */
  followed = false
  /** the leader reported its end or failure */
  final = false
  tee: CacheTee | null = null
  /** a follower's SSE answer carries the usage chunk this client did not ask for: stripped on the way */
  strip: UsageMeter | null = null

  constructor(s: RequestState, rp: RouteCachePlan, key: string, scope: string, client: CacheClient, then: (s: RequestState) => void) {
    this.s = s
    this.rp = rp
    this.key = key
    this.scope = scope
    this.client = client
    this.then = then
  }

  post(m: ToOwner, transfer?: ArrayBuffer): void {
    if (transfer === undefined) this.client.port.postMessage(m)
    else this.client.port.postMessage(m, [transfer])
  }

  end(usage: number, cost: number): void {
    this.final = true
    this.role = Role.DONE
    this.client.calls.delete(this.id)
    this.post({ t: W.END, id: this.id, key: this.key, usage, cost })
  }

  fail(): void {
    this.final = true
    this.role = Role.DONE
    this.client.calls.delete(this.id)
    this.post({ t: W.FAIL, id: this.id, key: this.key })
  }

  /** The request ended (account stage): tell the owner what it can no longer expect from this request. */
  finished(): void {
    switch (this.role) {
      case Role.WAIT:
        this.role = Role.DONE
        this.client.calls.delete(this.id)
        this.post({ t: W.LEFT, id: this.id, key: this.key })
        return
      case Role.LEAD:
        // an attempt under way reports its own end through the tee; none under way (no dispatch, or between
        // attempts) means no answer is coming from this leader
        if (this.tee === null || !this.tee.active) this.fail()
        return
      case Role.DONE:
        return
    }
  }
}

export class CacheClient {
  readonly port: MessagePort
  readonly calls = new Map<number, CacheCall>()
  readonly sink: CacheSink
  #next = 1

  constructor(port: MessagePort, sink: CacheSink) {
    this.port = port
    this.sink = sink
    port.on('message', (m: ToWorker) => this.onMessage(m))
    port.unref()
  }

  get(call: CacheCall): void {
    call.id = this.#next++
    if (this.#next > 0x3fffffff) this.#next = 1
    this.calls.set(call.id, call)
    const rp = call.rp
    call.post({ t: W.GET, id: call.id, key: call.key, route: rp.route, scope: call.scope, ttl: rp.ttl, swr: rp.swr, maxEntry: rp.maxEntry, fresh: call.fresh })
  }

  onMessage(m: ToWorker): void {
    const sink = this.sink
    switch (m.t) {
      case O.HIT:
        for (const id of m.ids) {
          const c = this.#take(id)
          if (c !== undefined) sink.hit(c, m)
        }
        return
      case O.LEAD: {
        const c = this.calls.get(m.id)
        if (c === undefined) return
        c.role = Role.LEAD
        return sink.lead(c)
      }
      case O.BYPASS: {
        const c = this.#take(m.id)
        if (c !== undefined) sink.bypass(c)
        return
      }
      case O.FOLLOW: {
        const c = this.calls.get(m.id)
        if (c !== undefined) c.s.cacheStatus = 'coalesced'
        return
      }
      case O.FOLLOWED: {
        const c = this.calls.get(m.id)
        if (c !== undefined) c.followed = true
        return
      }
      case O.HEAD:
        for (const id of m.ids) {
          const c = this.calls.get(id)
          if (c !== undefined) sink.head(c, m.status, m.headers)
        }
        return
      case O.DATA:
        for (const id of m.ids) {
          const c = this.calls.get(id)
          if (c !== undefined) sink.data(c, m.chunk)
        }
        return
      case O.END:
        for (const id of m.ids) {
          const c = this.#take(id)
          if (c !== undefined) sink.end(c, m.usage)
        }
        return
      case O.FAIL:
        for (const id of m.ids) {
          const c = this.#take(id)
          if (c !== undefined) sink.fail(c)
        }
        return
    }
  }

  #take(id: number): CacheCall | undefined {
    const c = this.calls.get(id)
    if (c === undefined) return undefined
    this.calls.delete(id)
    c.role = Role.DONE
    return c
  }
}
