// The Redis backend for `scope: cluster` limits: buckets shared by every proxy that talks to one Redis.
//
// Exact mode: one EVALSHA per request decides all of its cluster limits, all or nothing, with Redis TIME (redis-
// scripts.ts). Reconcile is a second script call after the response. A decision fills a RedisCharges (a Charges with
// `via`), so the limit stage renders the same headers it renders for local limits.
//
// Failure policy (on_error, per limit, default from the redis section): a call that fails or takes longer than
// `timeout` is decided without Redis — open admits, closed answers BUSY (the stage replies 503 + Retry-After: 1),
// local charges this proxy's bucket table with the limit divided by expected_instances. No call waits for Redis past
// `timeout`: ioredis `commandTimeout` rejects it, and with the offline queue disabled a call made while disconnected
// fails at once instead of queueing. ioredis reconnects by itself; the first answer (or `ready`) after a failure marks
// Redis up again. `onTransition` is called once per change of `up`, never per failed call.
//
// Redis Cluster: a key is `${key_prefix}{${limit}}:${scope}`, so all buckets of one limit share a hash slot. A
// script may only touch keys of one slot, so a request whose cluster limits hash to different slots gets CROSSSLOT
// (an error: on_error applies). To keep all-or-nothing over several limits on a cluster, put a hash tag in key_prefix
// (e.g. "leaky:{rl}:"): Redis hashes the first {...}, so every key lands in one slot (and one shard).
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { Config } from '../config/schema.js'
import { LeakyError } from '../errors.js'
import { Clock } from './clock.js'
import { compileLimit, type CompiledLimit } from './limit.js'
import { Charges, chargeAll } from './policy.js'
import { ADJUST_LUA, DECIDE_LUA } from './redis-scripts.js'
import { limitKeyPrefix } from './redis-slot.js'
import { BucketTable, Status } from './table.js'
import { createHash } from 'node:crypto'

export type RedisSection = NonNullable<Config['redis']>
export type OnError = RedisSection['on_error']

/** Who decided a RedisCharges. */
export const Via = {
  /** Redis answered */
  REDIS: 0,
  /** Redis failed: every charge was on_error open, admitted */
  OPEN: 1,
  /** Redis failed: a charge was on_error closed, status BUSY (503) */
  CLOSED: 2,
  /** Redis failed: the on_error local charges went to the local table (limits / expected_instances) */
  LOCAL: 3,
  /** lease mode: taken from this proxy's leased credit (redis-lease.ts) */
  LEASE: 4,
} as const
export type Via = (typeof Via)[keyof typeof Via]

/** A Via as logs name it (the access line's `cluster` field). */
export const VIA_NAME: Record<Via, string> = {
  [Via.REDIS]: 'redis', [Via.OPEN]: 'open', [Via.CLOSED]: 'closed', [Via.LOCAL]: 'local', [Via.LEASE]: 'lease',
}

/** Charges decided by the Redis backend. One per in-flight request: do not reuse it before decide() settles. */
export class RedisCharges extends Charges {
  via: Via = Via.REDIS

  override clear(): void {
    super.clear()
    this.via = Via.REDIS
  }
}

export interface RedisLimiterOptions {
  /** Called once per change of `up` (reason: the error, or 'ready'). Log it; it is not called per failed call. */
  onTransition?: (up: boolean, reason: string) => void
  /** on_error of the limits whose policy differs from the redis section's, by limit name */
  onError?: ReadonlyMap<string, OnError>
  /** the table on_error local falls back to (pass the generation's shared table; default: a private 16k-slot one) */
  fallback?: BucketTable
  /** ioredis options applied last (tests, bench: e.g. enableAutoPipelining) */
  client?: RedisOptions
  /** Called for every failed call (metrics); `timeout`: it hit redis.timeout. */
  onFailure?: (timeout: boolean) => void
  /** Called for an error reply from a Redis that is up (e.g. a bucket key holding something else): log it once. */
  onReplyError?: (message: string) => void
}

// ioredis error text for a command that hit commandTimeout
const TIMEOUT_MESSAGE = 'Command timed out'
// error replies that mean this Redis cannot serve now, as opposed to a bad command or key
const UNAVAILABLE_REPLY = /^(LOADING|READONLY|CLUSTERDOWN|MASTERDOWN|BUSY|TRYAGAIN|MASTER_DOWN)\b/

export class RedisLimiter {
  readonly client: Redis | Cluster
  readonly keyPrefix: string
  readonly timeoutMs: number
  readonly expectedInstances: number
  /** connected and answering; false until the first `ready` */
  up = false
  /** decisions Redis answered */
  decisions = 0
  /** calls that failed (errors and timeouts; decide and reconcile) */
  errors = 0
  /** of `errors`, calls that hit the timeout */
  timeouts = 0
  /** decisions made without Redis, by policy */
  fallbackOpen = 0
  fallbackClosed = 0
  fallbackLocal = 0
  /** NOSCRIPT replies (script cache flushed or a new server): answered by EVAL, which caches the script again */
  noscript = 0
  private readonly decideSha = sha1(DECIDE_LUA)
  private readonly adjustSha = sha1(ADJUST_LUA)
  private readonly policy: OnError
  private policies: ReadonlyMap<string, OnError>
  private readonly table: BucketTable | null
  private readonly clock = new Clock()
  private readonly onTransition: (up: boolean, reason: string) => void
  private readonly onFailure: (timeout: boolean) => void
  private readonly onReplyError: (message: string) => void
  private readonly prefixes = new Map<CompiledLimit, string>()
  private readonly shas = new Map<string, string>()
  private readonly divided = new Map<CompiledLimit, CompiledLimit>()
  // local fallback scratch: decisions there are synchronous, so one per limiter is enough
  private readonly scratch = new Charges()
  private readonly scratchIndex: number[] = []
  private closed = false

  constructor(cfg: RedisSection, opts: RedisLimiterOptions = {}) {
    this.keyPrefix = cfg.key_prefix
    this.timeoutMs = cfg.timeout
    this.expectedInstances = cfg.expected_instances
    this.policy = cfg.on_error
    this.policies = opts.onError ?? new Map()
    this.onTransition = opts.onTransition ?? noop
    this.onFailure = opts.onFailure ?? noop
    this.onReplyError = opts.onReplyError ?? noop
    const needsTable = this.policy === 'local' || [...this.policies.values()].includes('local')
    this.table = opts.fallback ?? (needsTable ? BucketTable.create(1 << 14) : null)
    this.client = connect(cfg, opts.client ?? {})
    this.client.on('ready', () => this.mark(true, 'ready'))
    this.client.on('close', () => this.mark(false, 'connection closed'))
    // ioredis emits 'error' for every failed reconnect; without a listener Node would throw it
    this.client.on('error', (e: Error) => this.mark(false, e.message))
  }

  /** Resolves once connected (or at once if up). For start-up and tests; decide() never waits for it. */
  ready(): Promise<void> {
    if (this.up) return Promise.resolve()
    return new Promise((resolve) => this.client.once('ready', () => resolve()))
  }

  /** The Redis key of (limit, scope). */
  key(limit: CompiledLimit, scope: string): string {
    let p = this.prefixes.get(limit)
    if (p === undefined) {
      p = limitKeyPrefix(this.keyPrefix, limit.name)
      this.prefixes.set(limit, p)
    }
    return p + scope
  }

  /**
   * Charge every charge of `req`, all or nothing, in one script call. Resolves (never rejects, never later than
   * `timeout` plus a NOSCRIPT retry) with req.status; req.via says who decided, req.now/tats/decider/retryNs are set as
   * chargeAll sets them (now = Redis time when Redis decided).
   */
  decide(req: RedisCharges): Promise<Status> {
    const n = req.length
    if (n === 0) return Promise.resolve(Status.OK)
    const args = this.args(req, req.costs)
    return this.client.evalsha(this.decideSha, n, ...args).then(
      (r) => this.fromRedis(req, r as unknown[]),
      (e: Error) => this.retryOrFallback(req, args, e),
    )
  }

  /**
   * Reconcile: add `delta` units (negative: refund) to every `tokens` charge of a request decided earlier, on the
   * backend that decided it. Resolves true when applied (or nothing to do), false when Redis failed (counted).
   */
  reconcile(req: RedisCharges, delta: number): Promise<boolean> {
    if (delta === 0 || req.status !== Status.OK) return Promise.resolve(true)
    const deltas: number[] = []
    const sub = new Charges()
    for (let i = 0; i < req.length; i++) {
      if (req.limits[i].unit !== 'tokens') continue
      sub.add(req.limits[i], req.scopes[i], 0)
      deltas.push(delta)
    }
    if (sub.length === 0) return Promise.resolve(true)
    switch (req.via) {
      case Via.REDIS:
        return this.adjust(sub, deltas)
      case Via.LOCAL: {
        const now = this.table!.clock.now()
        for (let i = 0; i < sub.length; i++) this.table!.adjust(sub.limits[i], sub.scopes[i], delta, now)
        return Promise.resolve(true)
      }
      case Via.OPEN:
      case Via.CLOSED:
        return Promise.resolve(true)
      case Via.LEASE:
        // usage beyond (or below) the estimate goes straight to the cluster bucket
        return this.adjust(sub, deltas)
      default: {
        const never: never = req.via
        return never
      }
    }
  }

  /** Add deltas[i] units to charge i's bucket (see ADJUST_LUA). Resolves false when Redis failed (counted). */
  adjust(req: Charges, deltas: number[]): Promise<boolean> {
    const args = this.args(req, deltas)
    return this.client.evalsha(this.adjustSha, req.length, ...args).then(
      () => true,
      (e: Error) => {
        if (!e.message.startsWith('NOSCRIPT')) return this.failed(e)
        this.noscript++
        return this.client.eval(ADJUST_LUA, req.length, ...args).then(() => true, (e2: Error) => this.failed(e2))
      },
    )
  }

  /** Units in the bucket (limit, scope) now, by Redis time; -1 when Redis failed. */
  async level(limit: CompiledLimit, scope: string): Promise<number> {
    try {
      const [[, tm], [, v]] = (await this.client.multi().time().get(this.key(limit, scope)).exec()) as [
        [Error | null, [string, string]], [Error | null, string | null]]
      const nowUs = Number(tm[0]) * 1e6 + Number(tm[1])
      const tatUs = v === null ? 0 : Number(v)
      return tatUs > nowUs ? ((tatUs - nowUs) * 1000) / limit.tNs : 0
    } catch (e) {
      this.failed(e as Error)
      return -1
    }
  }

  /** Replace the per-limit policies (a reload changed a limit's on_error; the connection stays). */
  setPolicies(policies: ReadonlyMap<string, OnError>): void {
    this.policies = policies
  }

  /** Policy of a limit when Redis fails. */
  onErrorOf(limit: CompiledLimit): OnError {
    return this.policies.get(limit.name) ?? this.policy
  }

  /** Close the connection (waits for replies in flight). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    try {
      await this.client.quit()
    } catch {
      this.client.disconnect()
    }
  }

  // [key_1 .. key_n, T_1 µs, burst_1, x_1, .., T_n µs, burst_n, x_n]
  private args(req: Charges, xs: number[]): Array<string | number> {
    const n = req.length
    const args: Array<string | number> = new Array(4 * n)
    for (let i = 0; i < n; i++) {
      const l = req.limits[i]
      args[i] = this.key(l, req.scopes[i])
      const j = n + 3 * i
      args[j] = l.tNs / 1000
      args[j + 1] = l.burst
      args[j + 2] = xs[i]
    }
    return args
  }

  private fromRedis(req: RedisCharges, r: unknown[]): Status {
    this.decisions++
    if (!this.up) this.mark(true, 'answering')
    const now = BigInt(r[3] as string) * 1_000_000_000n + BigInt(r[4] as string) * 1000n
    const st = Number(r[0]) as Status
    req.now = now
    req.via = Via.REDIS
    req.status = st
    req.decider = Number(r[1]) - 1
    req.retryNs = st === Status.DENIED ? Number(r[2]) : 0
    for (let i = 0; i < req.length; i++) req.tats[i] = now + BigInt(r[5 + i] as number)
    return st
  }

  private retryOrFallback(req: RedisCharges, args: Array<string | number>, e: Error): Promise<Status> | Status {
    if (!e.message.startsWith('NOSCRIPT')) return this.fallback(req, e)
    this.noscript++
    return this.client.eval(DECIDE_LUA, req.length, ...args).then(
      (r) => this.fromRedis(req, r as unknown[]),
      (e2: Error) => this.fallback(req, e2),
    )
  }

  /**
   * EVALSHA of `lua` (a script of redis-scripts.ts), EVAL on NOSCRIPT. Rejects when the call fails: the caller counts
   * it with failed(). Marks Redis up when it answers.
   */
  script(lua: string, numKeys: number, args: Array<string | number>): Promise<unknown> {
    let sha = this.shas.get(lua)
    if (sha === undefined) {
      sha = sha1(lua)
      this.shas.set(lua, sha)
    }
    return this.client.evalsha(sha, numKeys, ...args).then((r) => this.answered(r), (e: Error) => {
      if (!e.message.startsWith('NOSCRIPT')) throw e
      this.noscript++
      return this.client.eval(lua, numKeys, ...args).then((r) => this.answered(r))
    })
  }

  /** Count a failed call and mark Redis down (once per transition). */
  failed(e: Error): false {
    this.errors++
    const timeout = e.message === TIMEOUT_MESSAGE
    if (timeout) this.timeouts++
    this.onFailure(timeout)
    // An error reply comes from a Redis that answers: that call failed (on_error decides it), Redis is not down —
    // marking it down would send every other request to on_error too. Replies that do mean "cannot serve now"
    // (loading, failover, cluster down, a script running too long) count as down.
    if (e.name === 'ReplyError' && !UNAVAILABLE_REPLY.test(e.message)) {
      this.onReplyError(e.message)
      return false
    }
    this.mark(false, e.message)
    return false
  }

  private fallback(req: RedisCharges, e: Error): Status {
    this.failed(e)
    return this.decideWithout(req)
  }

  /**
   * Decide `req` by the on_error policies alone, as when Redis fails (counted as a fallback decision): closed wins
   * over local, local over open. Synchronous. Lease mode uses it when its credit is short and Redis is down.
   */
  decideWithout(req: RedisCharges): Status {
    const n = req.length
    let closed = -1
    const sub = this.scratch
    const idx = this.scratchIndex
    sub.clear()
    for (let i = 0; i < n; i++) {
      const p = this.onErrorOf(req.limits[i])
      if (p === 'closed') {
        if (closed < 0) closed = i
      } else if (p === 'local') {
        idx[sub.length] = i
        sub.add(this.dividedOf(req.limits[i]), req.scopes[i], req.costs[i])
      }
    }
    const now = this.table === null ? this.clock.now() : this.table.clock.now()
    req.now = now
    for (let i = 0; i < n; i++) req.tats[i] = now
    if (closed >= 0) {
      this.fallbackClosed++
      req.via = Via.CLOSED
      req.status = Status.BUSY
      req.decider = closed
      req.retryNs = 0
      return Status.BUSY
    }
    if (sub.length === 0) {
      this.fallbackOpen++
      req.via = Via.OPEN
      req.status = Status.OK
      req.decider = -1
      req.retryNs = 0
      return Status.OK
    }
    this.fallbackLocal++
    req.via = Via.LOCAL
    const st = chargeAll(this.table!, sub, now)
    for (let k = 0; k < sub.length; k++) {
      req.limits[idx[k]] = sub.limits[k]
      req.tats[idx[k]] = sub.tats[k]
    }
    req.status = st
    req.decider = sub.decider < 0 ? -1 : idx[sub.decider]
    req.retryNs = sub.retryNs
    return st
  }

  // the limit as one of expected_instances proxies enforces it alone: rate and burst divided, same bucket name
  private dividedOf(l: CompiledLimit): CompiledLimit {
    let d = this.divided.get(l)
    if (d === undefined) {
      const k = this.expectedInstances
      d = k === 1 ? l : compileLimit({
        name: l.name, per: l.per, unit: l.unit, amount: l.amount / k, period_ms: l.periodMs, burst: Math.max(1, l.burst / k),
      })
      this.divided.set(l, d)
    }
    return d
  }

  private answered<T>(r: T): T {
    if (!this.up) this.mark(true, 'answering')
    return r
  }

  private mark(up: boolean, reason: string): void {
    // a close we asked for is not Redis going down: no transition is reported after close()
    if (this.up === up || this.closed) return
    this.up = up
    this.onTransition(up, reason)
  }
}

function connect(cfg: RedisSection, extra: RedisOptions): Redis | Cluster {
  const common: RedisOptions = {
    commandTimeout: cfg.timeout,
    // fail at once while disconnected: a queued command would wait for the reconnect, past `timeout`
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // reconnect quickly at first, then every second at most: recovery is automatic
    retryStrategy: (times: number) => Math.min(times * 50, 1000),
    ...extra,
  }
  if (cfg.cluster !== undefined) {
    const { nodes, ...rest } = cfg.cluster as { nodes?: unknown } & ClusterOptions
    if (!Array.isArray(nodes)) throw new LeakyError('LEAKY_CONFIG_INVALID', 'redis.cluster.nodes: expected a list of host:port')
    return new Cluster(nodes, { ...rest, enableOfflineQueue: false, redisOptions: { ...common, ...rest.redisOptions } })
  }
  if (cfg.sentinel !== undefined) return new Redis({ ...common, ...(cfg.sentinel as RedisOptions) })
  return new Redis(cfg.url as string, common)
}

function sha1(s: string): string {
  return createHash('sha1').update(s).digest('hex')
}

function noop(): void {}
