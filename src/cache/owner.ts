// The cache owner: one per generation, on its main thread. It holds the stored answers (store.ts) and the requests
// in flight (flights), and answers the worker threads over one MessagePort each (protocol.ts).
//
// Why one owner thread rather than a SharedArrayBuffer arena: an arena needs its own allocator, a lock-free index
// and cross-thread LRU, and still a messaging channel for coalescing (a follower on worker B must receive a leader's
// stream as it arrives on worker A). With the owner, lookup, coalescing and eviction are plain single-threaded code,
// and a hit costs one message round trip; bench/macro/cache.mjs measures that against the plain GET path (README
// "Cache").
//
// A flight is one upstream call for a key. The first miss leads it; identical misses that arrive meanwhile follow:
// an SSE answer is relayed to them live as the leader's chunks arrive, a JSON answer whole when it ends. A leader
// that fails before anything reached its followers hands the call to one of them; after that, they get its failure.
import { MessageChannel, type MessagePort } from 'node:worker_threads'
import { CacheStore, entrySize, type Entry } from './store.js'
import { O, Served, W, type GetMsg, type HitMsg, type ToOwner, type ToWorker } from './protocol.js'
import type { CacheConfig, Config } from '../config/index.js'
import type { Logger } from '../observability/logger.js'
import { RedisCache } from './redis.js'

interface Flight {
  key: string
  route: string
  scope: string
  ttl: number
  swr: number
  maxEntry: number
  leaderPort: MessagePort
  leaderId: number
  /** waiting requests by worker port */
  followers: Map<MessagePort, number[]>
  followed: boolean
  status: number
  headers: string[] | null
  sse: boolean
  store: boolean
  chunks: Uint8Array[]
  times: number[]
  headAt: number
  bytes: number
  /** the SSE head went to the followers: from then on they are fed live and cannot be handed the call */
  relayed: boolean
  /** new requests may join (false once chunks were dropped past max_entry, or followers gave up waiting) */
  joinable: boolean
  startedAt: number
  /** a stale entry served while this flight refreshes it */
  stale: Entry | null
  /** waiting for the Redis lookup (cache.redis): the leader is chosen but not told to go upstream yet */
  remote: boolean
}

export interface CacheCounters {
  hits: number
  stale: number
  misses: number
  coalesced: number
  tokensSaved: number
  /** pico-USD the served copies would have cost asked again (answers with a known price only) */
  costSavedPico: number
}

export class CacheOwner {
  readonly store: CacheStore
  readonly flights = new Map<string, Flight>()
  readonly counters: CacheCounters = { hits: 0, stale: 0, misses: 0, coalesced: 0, tokensSaved: 0, costSavedPico: 0 }
  readonly #ports = new Set<MessagePort>()
  readonly #logger: Logger
  #section: string
  #beta: number
  #wait: number
  #sweep: NodeJS.Timeout | null = null
  /** cache.redis: the fleet tier behind the local store */
  redis: RedisCache | null = null
  /** ms clock (tests step it); Math.random draws XFetch's chance (tests fix it) */
  readonly now: () => number
  readonly random: () => number

  constructor(config: Config, logger: Logger, clock: { now?: () => number, random?: () => number } = {}) {
    this.now = clock.now ?? Date.now
    this.random = clock.random ?? Math.random
    this.store = new CacheStore(config.cache.memory)
    this.#logger = logger
    this.#section = sectionOf(config)
    this.#beta = config.cache.xfetch_beta
    this.#wait = config.cache.wait
    this.#remote(config)
  }

  /** cache.redis on (or its Redis changed) → a client; off → none. Its namespace follows the cache settings. */
  #remote(config: Config): void {
    const r = config.redis
    const want = config.cache.redis && r?.url !== undefined ? `${r.url}\0${r.key_prefix}\0${r.timeout}` : ''
    if (want !== this.#redisConf) {
      this.redis?.close()
      this.redis = want === '' ? null : new RedisCache(r!.url!, r!.key_prefix, r!.timeout, this.#logger)
      this.#redisConf = want
    }
    this.redis?.settings(this.#section)
  }

  #redisConf = ''

  /** A new port pair for a worker thread: the owner keeps one end, the worker gets the other (transfer it). */
  connect(): MessagePort {
    const { port1, port2 } = new MessageChannel()
    this.#ports.add(port1)
    port1.on('message', (m: ToOwner) => this.onMessage(port1, m))
    // the worker's end closes when its thread exits (drain, crash): what it led fails over, what it waited for is gone
    port1.on('close', () => this.#gone(port1))
    if (this.#sweep === null) {
      this.#sweep = setInterval(() => this.#expireWaits(this.now()), 1000)
      this.#sweep.unref()
    }
    return port2
  }

  /** A reload: flush everything when the cache settings (section or any route's) changed, keep it otherwise. */
  configure(config: Config): number {
    this.#beta = config.cache.xfetch_beta
    this.#wait = config.cache.wait
    const s = sectionOf(config)
    const changed = s !== this.#section
    this.#section = s
    this.#remote(config)
    if (!changed) return 0
    this.store.limit = config.cache.memory
    const n = this.store.clear()
    this.#logger.info({ msg: 'cache flushed: its settings changed', entries: n })
    return n
  }

  /** Remove stored entries by route path and/or scope value (both unset: all). In-flight calls are not stored. */
  purge(route: string | undefined, scope: string | undefined): number {
    if (route === undefined && scope === undefined) {
      for (const f of this.flights.values()) f.store = false
      return this.store.clear()
    }
    for (const f of this.flights.values()) if ((route === undefined || f.route === route) && (scope === undefined || f.scope === scope)) f.store = false
    return this.store.purge((e) => (route === undefined || e.route === route) && (scope === undefined || e.scope === scope))
  }

  /** The same purge in Redis (every proxy's entries): the count removed there, 0 without cache.redis. */
  purgeRemote(route: string | undefined, scope: string | undefined): Promise<number> {
    return this.redis === null ? Promise.resolve(0) : this.redis.purge(route, scope)
  }

  close(): void {
    this.redis?.close()
    this.redis = null
    if (this.#sweep !== null) clearInterval(this.#sweep)
    this.#sweep = null
    for (const p of this.#ports) p.close()
    this.#ports.clear()
  }

  onMessage(port: MessagePort, m: ToOwner): void {
    switch (m.t) {
      case W.GET:
        return this.#get(port, m, this.now())
      case W.LEFT:
        return this.#left(port, m.key, m.id)
    }
    const f = this.flights.get(m.key)
    // a message of a leader that has been replaced (it failed, or its worker is gone) is not this flight's any more
    if (f === undefined || f.leaderPort !== port || f.leaderId !== m.id) return
    switch (m.t) {
      case W.HEAD:
        f.status = m.status
        f.headers = m.headers
        f.headAt = this.now()
        f.sse = m.sse
        if (!m.store) f.store = false
        if (m.sse) {
          f.relayed = true
          this.#each(f, (p, ids) => send(p, { t: O.HEAD, ids, status: m.status, headers: m.headers }))
        }
        return
      case W.DATA: {
        const c = m.chunk
        if (f.relayed) this.#each(f, (p, ids) => send(p, { t: O.DATA, ids, chunk: c }))
        if (!f.joinable) return
        f.chunks.push(c)
        if (f.sse) f.times.push(this.now() - f.headAt)
        f.bytes += c.byteLength
        return
      }
      case W.OVER:
        f.store = false
        f.joinable = false
        f.chunks = []
        f.times = []
        // a JSON answer was not relayed: its followers cannot get it whole from here, they ask the upstream themselves
        if (!f.relayed) this.#each(f, (p, ids) => ids.forEach((id) => send(p, { t: O.BYPASS, id })), true)
        return
      case W.END:
        return this.#end(f, m.usage, m.cost, this.now())
      case W.FAIL:
        return this.#fail(f)
    }
  }

  #get(port: MessagePort, m: GetMsg, now: number): void {
    const flight = this.flights.get(m.key)
    if (!m.fresh) {
      const e = this.store.get(m.key)
      if (e !== undefined) {
        if (now < e.expiresAt) {
          // XFetch: the closer to expiry and the costlier the answer, the likelier one request refreshes it early
          // (then it leads a flight while the others keep getting this entry)
          const early = this.#beta > 0 && flight === undefined && now - e.delta * this.#beta * Math.log(this.random()) >= e.expiresAt
          if (!early) return this.#hit(port, [m.id], e, Served.HIT, now)
        } else if (now < e.staleUntil) {
          if (flight !== undefined) return this.#hit(port, [m.id], e, Served.STALE, now)
        } else {
          this.store.delete(m.key)
        }
      }
    }
    if (flight !== undefined) {
      if (!flight.joinable) return send(port, { t: O.BYPASS, id: m.id })
      if (flight.stale !== null && !m.fresh && now < flight.stale.staleUntil) return this.#hit(port, [m.id], flight.stale, Served.STALE, now)
      this.counters.coalesced++
      send(port, { t: O.FOLLOW, id: m.id })
      const ids = flight.followers.get(port)
      if (ids === undefined) flight.followers.set(port, [m.id])
      else ids.push(m.id)
      if (!flight.followed) {
        flight.followed = true
        send(flight.leaderPort, { t: O.FOLLOWED, id: flight.leaderId })
      }
      if (flight.relayed) {
        // joins an SSE answer under way: what was relayed so far, then live
        const one = [m.id]
        send(port, { t: O.HEAD, ids: one, status: flight.status, headers: flight.headers! })
        for (const c of flight.chunks) send(port, { t: O.DATA, ids: one, chunk: c })
      }
      return
    }
    const stale = m.fresh ? null : (this.store.get(m.key) ?? null)
    // another proxy may have the answer: look it up first (unless the client asked for a fresh one, or a stale entry
    // is being refreshed); identical requests meanwhile join this flight as they would a call upstream
    const remote = this.redis !== null && !m.fresh && stale === null
    const f: Flight = {
      key: m.key, route: m.route, scope: m.scope, ttl: m.ttl, swr: m.swr, maxEntry: m.maxEntry,
      leaderPort: port, leaderId: m.id, followers: new Map(), followed: false,
      status: 0, headers: null, sse: false, store: true, chunks: [], times: [], headAt: 0, bytes: 0, relayed: false, joinable: true,
      startedAt: now, stale, remote,
    }
    this.flights.set(m.key, f)
    if (!remote) {
      this.counters.misses++
      send(port, { t: O.LEAD, id: m.id })
      return
    }
    void this.redis!.get(m.key, m.route, m.scope).then((e) => this.#looked(f, e))
  }

  /** The Redis lookup of flight `f` is back: serve its answer to everyone waiting, or send the leader upstream. */
  #looked(f: Flight, e: Entry | null): void {
    // the flight was given up meanwhile (its requests left, a purge)
    if (this.flights.get(f.key) !== f) return
    f.remote = false
    const now = this.now()
    // past its ttl it is not taken: a stale answer is only served while a refresh is under way, and this one leads it
    if (e === null || now >= e.expiresAt || e.status < 200 || e.status >= 300) {
      this.counters.misses++
      f.startedAt = now
      send(f.leaderPort, { t: O.LEAD, id: f.leaderId })
      if (f.followed) send(f.leaderPort, { t: O.FOLLOWED, id: f.leaderId })
      return
    }
    this.flights.delete(f.key)
    e.bytes = entrySize(e.key, e.headers, e.chunks)
    if (f.store) this.store.set(e)
    this.#hit(f.leaderPort, [f.leaderId], e, Served.HIT, now)
    // the followers were counted as coalesced when they joined; they get the same stored answer
    this.#each(f, (p, ids) => {
      if (e.usage > 0) this.counters.tokensSaved += e.usage * ids.length
      if (e.cost > 0) this.counters.costSavedPico += e.cost * ids.length
      send(p, { t: O.HIT, ids, served: Served.COALESCED, status: e.status, headers: e.headers, sse: e.sse, chunks: e.chunks, times: e.times, usage: e.usage, age: Math.max(0, Math.floor((now - e.storedAt) / 1000)) })
    })
  }

  #hit(port: MessagePort, ids: number[], e: Entry, served: Served, now: number): void {
    if (served === Served.HIT) this.counters.hits += ids.length
    else if (served === Served.STALE) this.counters.stale += ids.length
    if (e.usage > 0) this.counters.tokensSaved += e.usage * ids.length
    if (e.cost > 0) this.counters.costSavedPico += e.cost * ids.length
    const m: HitMsg = {
      t: O.HIT, ids, served, status: e.status, headers: e.headers, sse: e.sse, chunks: e.chunks, times: e.times, usage: e.usage,
      age: Math.max(0, Math.floor((now - e.storedAt) / 1000)),
    }
    send(port, m)
  }

  #end(f: Flight, usage: number, cost: number, now: number): void {
    this.flights.delete(f.key)
    const headers = f.headers ?? []
    const ok = f.status >= 200 && f.status < 300
    // a JSON answer is kept as one piece: a hit is written with one end() and its Content-Length
    const chunks = !f.sse && f.chunks.length > 1 ? [joined(f.chunks, f.bytes)] : f.chunks
    const e: Entry = {
      key: f.key, route: f.route, scope: f.scope, status: f.status, headers, sse: f.sse, chunks, times: f.times, usage, cost,
      bytes: entrySize(f.key, headers, chunks), storedAt: now, expiresAt: now + f.ttl, staleUntil: now + f.ttl + f.swr,
      delta: now - f.startedAt,
    }
    if (f.store && ok && f.bytes <= f.maxEntry) {
      this.store.set(e)
      this.redis?.set(e, now)
    }
    if (usage > 0) this.counters.tokensSaved += usage * this.#followers(f)
    if (cost > 0) this.counters.costSavedPico += cost * this.#followers(f)
    if (f.relayed) {
      this.#each(f, (p, ids) => send(p, { t: O.END, ids, usage }))
    } else {
      this.#each(f, (p, ids) => send(p, {
        t: O.HIT, ids, served: Served.COALESCED, status: e.status, headers, sse: e.sse, chunks: e.chunks, times: e.times, usage, age: 0,
      }))
    }
  }

  #fail(f: Flight): void {
    if (f.relayed) {
      this.flights.delete(f.key)
      this.#each(f, (p, ids) => send(p, { t: O.FAIL, ids }))
      return
    }
    // nothing reached the followers yet: the first of them leads the call now
    for (const [p, ids] of f.followers) {
      const id = ids.shift()
      if (ids.length === 0) f.followers.delete(p)
      if (id === undefined) continue
      f.leaderPort = p
      f.leaderId = id
      f.followed = f.followers.size > 0
      // the Redis lookup is still out: its answer goes to the new leader
      if (f.remote) return
      f.status = 0
      f.headers = null
      f.chunks = []
      f.times = []
      f.bytes = 0
      f.startedAt = this.now()
      send(p, { t: O.LEAD, id })
      if (f.followed) send(p, { t: O.FOLLOWED, id })
      return
    }
    this.flights.delete(f.key)
  }

  #left(port: MessagePort, key: string, id: number): void {
    const f = this.flights.get(key)
    if (f === undefined) return
    if (f.leaderPort === port && f.leaderId === id) return this.#fail(f)
    const ids = f.followers.get(port)
    if (ids === undefined) return
    const i = ids.indexOf(id)
    if (i >= 0) ids.splice(i, 1)
    if (ids.length === 0) f.followers.delete(port)
  }

  /** A worker thread is gone: the flights it led fail over, its waiting requests are forgotten. */
  #gone(port: MessagePort): void {
    this.#ports.delete(port)
    for (const f of [...this.flights.values()]) {
      f.followers.delete(port)
      if (f.leaderPort === port) this.#fail(f)
    }
  }

  /** Followers that waited longer than cache.wait for their leader's first bytes go upstream themselves. */
  #expireWaits(now: number): void {
    for (const f of this.flights.values()) {
      if (f.relayed || f.followers.size === 0 || now - f.startedAt < this.#wait) continue
      f.joinable = false
      this.#logger.warn({ msg: 'cache: coalesced requests waited too long for their leader; they go upstream themselves', route: f.route, waiting: this.#followers(f) })
      this.#each(f, (p, ids) => ids.forEach((id) => send(p, { t: O.BYPASS, id })), true)
    }
  }

  #followers(f: Flight): number {
    let n = 0
    for (const ids of f.followers.values()) n += ids.length
    return n
  }

  #each(f: Flight, fn: (p: MessagePort, ids: number[]) => void, clear = false): void {
    for (const [p, ids] of f.followers) if (ids.length > 0) fn(p, ids)
    if (clear) f.followers.clear()
  }
}

// its own ArrayBuffer, exactly this long: Buffer.concat may return a view into a shared pool, which a message would
// copy whole and the byte count would not see
function joined(chunks: Uint8Array[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.byteLength
  }
  return out
}

function send(p: MessagePort, m: ToWorker): void {
  p.postMessage(m)
}

/** The cache settings a reload compares: the section and every route's cache, by route path. */
function sectionOf(config: Config): string {
  const routes: Record<string, unknown> = {}
  for (const r of config.routes) if (r.cache !== undefined) routes[`${r.host ?? ''} ${r.path}`] = r.cache
  const c: CacheConfig = config.cache
  return JSON.stringify({ memory: c.memory, charge_tokens: c.charge_tokens, ignore: c.ignore, routes })
}
