// The fleet tier of the response cache (`cache.redis: true`): stored answers are also written to the Redis the limits
// use, so a proxy that misses locally can take another proxy's answer instead of asking the upstream. The local cache
// stays in front (a local hit never touches the network) and the owner keeps coalescing: one Redis lookup per key in
// flight, whatever the number of waiting requests.
//
// Redis is an optimisation here, never a dependency: a lookup that fails, times out (redis.timeout) or finds a value
// that does not decode is a miss — logged once per transition, counted — and a write that fails is dropped.
//
// Keys: `<prefix>cache:<settings>:<route hex>:<scope hex>:<cache key>`. <settings> is a hash of the cache settings
// (section and every route's cache), so proxies with other settings never share entries and a reload that changes
// them starts a new namespace, as the local flush does; route and scope are hex so a purge can match them with SCAN
// patterns that no route path or scope value can subvert. Entries expire in Redis when they stop being servable
// (ttl + stale_while_revalidate).
import { createHash } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Logger } from '../observability/logger.js'
import type { Entry } from './store.js'

const VERSION = 1
/** keys UNLINKed per call during a purge */
const BATCH = 500

export interface RemoteCounters {
  hits: number
  misses: number
  /** lookups and writes that failed or timed out, and values that did not decode */
  errors: number
  writes: number
}

export class RedisCache {
  readonly counters: RemoteCounters = { hits: 0, misses: 0, errors: 0, writes: 0 }
  readonly #redis: Redis
  readonly #prefix: string
  readonly #logger: Logger
  #space = ''
  #failing = false
  #corruptLogged = false

  constructor(url: string, prefix: string, timeoutMs: number, logger: Logger) {
    // no offline queue: while Redis is unreachable a lookup fails at once (a miss) instead of waiting for it
    this.#redis = new Redis(url, {
      maxRetriesPerRequest: 0, enableOfflineQueue: false, commandTimeout: timeoutMs,
      retryStrategy: (n: number) => Math.min(n * 100, 1000),
    })
    this.#redis.on('error', (err: Error) => this.#fail(err))
    this.#redis.on('ready', () => this.#ok())
    this.#prefix = `${prefix}cache:`
    this.#logger = logger
  }

  /** The namespace of the current cache settings (owner.sectionOf): set at start and on every reload. */
  settings(section: string): void {
    this.#space = createHash('sha256').update(section).digest('hex').slice(0, 12)
  }

  /** The stored answer for `key`, or null: absent, expired, Redis failing, or a value that does not decode. */
  async get(key: string, route: string, scope: string): Promise<Entry | null> {
    let v: Buffer | null
    try {
      v = await this.#redis.getBuffer(this.#key(key, route, scope))
    } catch (err) {
      this.counters.errors++
      this.#fail(err as Error)
      return null
    }
    this.#ok()
    if (v === null) {
      this.counters.misses++
      return null
    }
    const e = decode(v, key, route, scope)
    if (e === null) {
      this.counters.errors++
      if (!this.#corruptLogged) {
        this.#corruptLogged = true
        this.#logger.warn({ msg: 'cache: a Redis entry did not decode; served as a miss (logged once)', route, bytes: v.length })
      }
      return null
    }
    this.counters.hits++
    return e
  }

  /** Store `e` for as long as it can be served; fire and forget. */
  set(e: Entry, now: number): void {
    const ttl = Math.floor(e.staleUntil - now)
    if (ttl <= 0) return
    this.counters.writes++
    this.#redis.set(this.#key(e.key, e.route, e.scope), encode(e), 'PX', ttl).then(() => this.#ok(), (err: Error) => {
      this.counters.errors++
      this.#fail(err)
    })
  }

  /** Remove every entry of `route` and/or `scope` (neither: all), in every settings namespace. Resolves to the count. */
  async purge(route: string | undefined, scope: string | undefined): Promise<number> {
    const r = route === undefined ? '*' : hex(route)
    const s = scope === undefined ? '*' : hex(scope)
    const match = `${this.#prefix}*:${r}:${s}:*`
    let cursor = '0'
    let n = 0
    do {
      const [next, keys] = await this.#redis.scan(cursor, 'MATCH', match, 'COUNT', 1000)
      cursor = next
      for (let i = 0; i < keys.length; i += BATCH) n += await this.#redis.unlink(...keys.slice(i, i + BATCH))
    } while (cursor !== '0')
    return n
  }

  close(): void {
    this.#redis.disconnect()
  }

  #key(key: string, route: string, scope: string): string {
    return `${this.#prefix}${this.#space}:${hex(route)}:${hex(scope)}:${key}`
  }

  #fail(err: Error): void {
    if (this.#failing) return
    this.#failing = true
    this.#logger.warn({ msg: 'cache: Redis failing; lookups are misses until it answers again', err: err.message })
  }

  #ok(): void {
    if (!this.#failing) return
    this.#failing = false
    this.#logger.info({ msg: 'cache: Redis answering again' })
  }
}

function hex(s: string): string {
  return Buffer.from(s, 'utf8').toString('hex')
}

interface Head {
  v: number
  status: number
  headers: string[]
  sse: boolean
  lens: number[]
  times: number[]
  usage: number
  cost: number
  storedAt: number
  expiresAt: number
  staleUntil: number
  delta: number
}

/** [u32 length of the JSON head][head][chunk bytes, back to back] */
export function encode(e: Entry): Buffer {
  const head: Head = {
    v: VERSION, status: e.status, headers: e.headers, sse: e.sse, lens: e.chunks.map((c) => c.byteLength), times: e.times,
    usage: e.usage, cost: e.cost, storedAt: e.storedAt, expiresAt: e.expiresAt, staleUntil: e.staleUntil, delta: e.delta,
  }
  const h = Buffer.from(JSON.stringify(head), 'utf8')
  const out = Buffer.allocUnsafe(4 + h.length + e.chunks.reduce((n, c) => n + c.byteLength, 0))
  out.writeUInt32BE(h.length, 0)
  h.copy(out, 4)
  let at = 4 + h.length
  for (const c of e.chunks) {
    out.set(c, at)
    at += c.byteLength
  }
  return out
}

/** The entry, or null when the value is not one this version wrote whole. */
export function decode(v: Buffer, key: string, route: string, scope: string): Entry | null {
  if (v.length < 4) return null
  const hl = v.readUInt32BE(0)
  if (hl > v.length - 4) return null
  let head: Head
  try {
    head = JSON.parse(v.toString('utf8', 4, 4 + hl)) as Head
  } catch {
    return null
  }
  if (head === null || typeof head !== 'object' || head.v !== VERSION || !Array.isArray(head.lens) || !Array.isArray(head.headers) ||
    !Array.isArray(head.times) || !Number.isInteger(head.status) || typeof head.sse !== 'boolean' ||
    !head.headers.every((x) => typeof x === 'string') || !head.lens.every((x) => Number.isInteger(x) && x >= 0) ||
    ![head.usage, head.cost, head.storedAt, head.expiresAt, head.staleUntil, head.delta].every((x) => typeof x === 'number')) return null
  let at = 4 + hl
  const chunks: Uint8Array[] = []
  for (const n of head.lens) {
    if (at + n > v.length) return null
    // each chunk its own ArrayBuffer: chunks travel to the workers as their own messages
    chunks.push(new Uint8Array(v.subarray(at, at + n)))
    at += n
  }
  if (at !== v.length) return null
  return {
    key, route, scope, status: head.status, headers: head.headers, sse: head.sse, chunks, times: head.times, usage: head.usage,
    cost: head.cost, bytes: 0, storedAt: head.storedAt, expiresAt: head.expiresAt, staleUntil: head.staleUntil, delta: head.delta,
  }
}
