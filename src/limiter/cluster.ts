// One worker thread's view of the `scope: cluster` limits: its Redis connection (RedisLimiter) and, in lease mode,
// its leased credit (RedisLease), behind one decide(). The limit stage calls it after the local limits admitted the
// request; it answers synchronously when it can (lease credit, or Redis already known down) and otherwise with a
// promise that settles within redis.timeout (plus one NOSCRIPT retry), never rejecting.
//
// Why per worker thread and not one per proxy: a call from a worker to the generation's main thread and back costs
// a message hop each way on top of the Redis round trip, and one ioredis connection per thread already pipelines
// that thread's concurrent decisions (bench/micro/redis.mjs: 64 in flight on one connection ≈ 10× one at a time).
// The price is in lease mode: each thread holds its own credit, so each gets 1/threads of the proxy's lease cap
// (L = burst / expected_instances / threads): one thread cannot lease the proxy's whole share and leave its siblings
// short, and the bound N·L stays one burst when N = expected_instances proxies.
import type { Logger } from '../observability/logger.js'
import { metrics, RedisCell } from '../observability/metrics.js'
import { RedisLease } from './redis-lease.js'
import { RedisCharges, RedisLimiter, Via, type OnError, type RedisSection } from './redis.js'
import { Status, type BucketTable } from './table.js'

/** The metrics cell of a decision, by who made it (Via). */
const VIA_CELL: Record<Via, RedisCell> = {
  [Via.REDIS]: RedisCell.DECISION_EXACT,
  [Via.OPEN]: RedisCell.FALLBACK_OPEN,
  [Via.CLOSED]: RedisCell.FALLBACK_CLOSED,
  [Via.LOCAL]: RedisCell.FALLBACK_LOCAL,
  [Via.LEASE]: RedisCell.DECISION_LEASE,
}

export class ClusterLimiter {
  readonly redis: RedisLimiter
  readonly lease: RedisLease | null
  /** the redis section this was built from (canonical JSON): a reload with the same one keeps the connection */
  readonly section: string
  #renewals = 0
  #probing = false
  readonly #replies = new Set<string>()

  /** `threads`: worker threads of this proxy, each with its own ClusterLimiter (they share the lease cap) */
  constructor(cfg: RedisSection, policies: ReadonlyMap<string, OnError>, fallback: BucketTable, logger: Logger, threads = 1) {
    this.section = JSON.stringify(cfg)
    this.redis = new RedisLimiter(cfg, {
      onError: policies,
      fallback,
      onTransition: (up, reason) => {
        metrics.redisState(up)
        if (up) logger.info({ msg: 'redis up', reason })
        else logger.warn({ msg: 'redis down', reason, on_error: cfg.on_error, timeout_ms: cfg.timeout })
      },
      onFailure: (timeout) => metrics.redis(timeout ? RedisCell.TIMEOUT : RedisCell.ERROR),
      onReplyError: (message) => {
        // once per distinct reply (bounded): a misconfigured key would otherwise log on every request
        if (this.#replies.has(message) || this.#replies.size >= 32) return
        this.#replies.add(message)
        logger.warn({ msg: 'redis error reply', reason: message, on_error: cfg.on_error })
      },
    })
    metrics.redisState(false)
    this.lease = cfg.mode === 'lease' ? new RedisLease(this.redis, { threads }) : null
  }

  setPolicies(policies: ReadonlyMap<string, OnError>): void {
    this.redis.setPolicies(policies)
  }

  /** Decide every charge of `req`, all or nothing (see RedisLimiter.decide, RedisLease.take). */
  decide(req: RedisCharges): Status | Promise<Status> {
    const lease = this.lease
    if (lease === null) {
      const redis = this.redis
      if (!redis.up) {
        // Known down: decide by on_error now. A dropped connection announces its return (ready); a stalled one
        // (still connected, not answering) does not, so one real call at a time probes it, bounded by timeout.
        if (this.#probing || redis.client.status !== 'ready') return this.counted(req, redis.decideWithout(req))
        this.#probing = true
        return redis.decide(req).then((st) => {
          this.#probing = false
          return this.counted(req, st)
        })
      }
      return redis.decide(req).then((st) => this.counted(req, st))
    }
    // short only because renewals already asked for have not arrived: wait for them, bounded by redis.timeout
    const r = lease.takeWaiting(req, performance.now() + this.redis.timeoutMs)
    this.countRenewals(lease)
    if (typeof r === 'number') return this.counted(req, r)
    return r.then((st) => {
      this.countRenewals(lease)
      return this.counted(req, st)
    })
  }

  /** Replace a token estimate with the usage (delta units; negative refunds) on the backend that decided `req`. */
  reconcile(req: RedisCharges, delta: number): void {
    void this.redis.reconcile(req, delta)
  }

  /** Give leased credit back and close the connection (drain, reload that replaced the redis section). */
  async close(): Promise<void> {
    if (this.lease !== null) await this.lease.close()
    await this.redis.close()
    metrics.redisState(null)
  }

  private counted(req: RedisCharges, st: Status): Status {
    metrics.redis(VIA_CELL[req.via])
    return st
  }

  private countRenewals(lease: RedisLease): void {
    const n = lease.renewals
    if (n !== this.#renewals) {
      metrics.redis(RedisCell.LEASE_RENEWALS, n - this.#renewals)
      this.#renewals = n
    }
  }
}

/** The on_error of each cluster limit that sets its own. */
export function clusterPolicies(limits: Record<string, { scope: string; on_error?: OnError }>): Map<string, OnError> {
  const m = new Map<string, OnError>()
  for (const [name, l] of Object.entries(limits)) if (l.scope === 'cluster' && l.on_error !== undefined) m.set(name, l.on_error)
  return m
}
