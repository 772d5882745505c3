// Lease mode: the hot path never waits on the network. Each proxy takes slices ("leases") of a cluster bucket's
// budget with one script call (LEASE_LUA: as many units as conform now, charged like a request of that cost) and
// spends them locally, synchronously; it renews in the background when its credit runs below half a lease, and gives
// unused credit back on close (shutdown, upgrade).
//
// Lease size adapts to this proxy's own consumption: units used since the last renewal / time since it, times
// `horizonMs` (how long a lease should last), between 1 and maxLease = floor(burst / (expected_instances × threads)).
// A request larger than the lease asks for its own cost.
//
// Overshoot bound. Redis admits into leases exactly what GCRA admits (rate·T + burst over any window T). What proxies
// spend in a window is that plus the credit they already held when it began, so
//     admitted(T) <= rate·T + burst + N · L      (N lessees = proxies × threads, L = max lease size =
//                                                  burst / (expected_instances × threads), or the largest single
//                                                  request cost if that is bigger)
// With expected_instances proxies that is at most one extra burst. A lease that is never spent is not lost for the
// cluster: the bucket drains on Redis as always; close() refunds what is left (a refund never goes below empty).
//
// Credit lives in this object: one per worker thread (src/limiter/cluster.ts), which is why the cap divides by threads.
import type { CompiledLimit } from './limit.js'
import { Charges } from './policy.js'
import { type RedisCharges, type RedisLimiter, Via } from './redis.js'
import { LEASE_LUA } from './redis-scripts.js'
import { Status } from './table.js'

class Lease {
  /** units held locally */
  credit = 0
  /** target lease size (adaptive) */
  size = 1
  /** units taken since the last grant, and when that was (performance.now ms) */
  used = 0
  since = 0
  inFlight = false
  /** the renewal under way, resolved when it is granted or failed */
  pending: Promise<void> | null = null
  /** units wanted by requests waiting for a renewal (takeWaiting): the next renewal asks for them too */
  demand = 0
  /** performance.now ms before which no renewal is tried (the cluster bucket was full) */
  nextAt = 0
  constructor(readonly limit: CompiledLimit, readonly scope: string, readonly key: string, readonly max: number) {}
}

export interface LeaseOptions {
  /** how long a lease should last at this proxy's current rate (default 200 ms) */
  horizonMs?: number
  /** lessees in this proxy that share its cap (worker threads, each with a RedisLease; default 1) */
  threads?: number
}

export class RedisLease {
  readonly limiter: RedisLimiter
  readonly horizonMs: number
  readonly threads: number
  /** units granted by Redis, units given back on close, lease calls made, lease calls that failed */
  leased = 0
  returned = 0
  renewals = 0
  failures = 0
  /** decisions answered from credit, and denied for lack of it (Redis up) */
  taken = 0
  short = 0
  /**
   * After take() answered DENIED for lack of credit: the renewal under way for the short bucket (null if none, e.g.
   * the cluster bucket itself is full), and that bucket and the request's cost on it.
   */
  shortWait: Promise<void> | null = null
  private shortEntry: Lease | null = null
  private shortCost = 0
  private readonly leases = new Map<string, Lease>()

  constructor(limiter: RedisLimiter, opts: LeaseOptions = {}) {
    this.limiter = limiter
    this.horizonMs = opts.horizonMs ?? 200
    this.threads = Math.max(1, opts.threads ?? 1)
  }

  /** Largest lease of a limit: its burst shared by the expected instances, and by the threads of one. */
  maxLease(limit: CompiledLimit): number {
    return Math.max(1, Math.floor(limit.burst / (this.limiter.expectedInstances * this.threads)))
  }

  /**
   * Charge `req` from local credit, all or nothing, synchronously (never waits on Redis). OK: taken (via LEASE,
   * `remaining` = credit left). DENIED: some bucket's credit is short; a renewal is under way and retryNs says when
   * to try again. While Redis is down and credit is short, the on_error policies decide (limiter.decideWithout).
   */
  take(req: RedisCharges): Status {
    const n = req.length
    const now = performance.now()
    req.via = Via.LEASE
    this.shortWait = null
    req.now = BigInt(Math.round((performance.timeOrigin + now) * 1e6))
    let short = -1
    for (let i = 0; i < n; i++) {
      const l = req.limits[i]
      if (req.costs[i] > l.burst) return this.end(req, Status.OVER_BURST, i, 0)
      const e = this.entry(l, req.scopes[i])
      if (e.credit < req.costs[i]) {
        short = i
        this.renew(e, now, req.costs[i])
      }
    }
    if (short >= 0) {
      if (!this.limiter.up) return this.limiter.decideWithout(req)
      this.short++
      const l = req.limits[short]
      const e = this.entry(l, req.scopes[short])
      this.shortWait = e.pending
      this.shortEntry = e
      this.shortCost = req.costs[short]
      const waitMs = Math.max(e.nextAt - now, 0)
      const retry = Math.max(waitMs * 1e6, (req.costs[short] - e.credit) * l.tNs)
      for (let i = 0; i < n; i++) req.tats[i] = req.now + BigInt(req.limits[i].tauNs)
      return this.end(req, Status.DENIED, short, retry)
    }
    for (let i = 0; i < n; i++) {
      const l = req.limits[i]
      const e = this.entry(l, req.scopes[i])
      e.credit -= req.costs[i]
      e.used += req.costs[i]
      // remaining (headers.ts) = credit left: afterNs = tau - credit·T
      req.tats[i] = req.now + BigInt(Math.max(0, l.tauNs - e.credit * l.tNs))
      if (e.credit * 2 < e.size) this.renew(e, now, 0)
    }
    this.taken++
    return this.end(req, Status.OK, -1, 0)
  }

  /**
   * take(), but a request short of credit only because a renewal is on its way waits for it (and for the ones after
   * it, its cost added to the bucket's demand so one renewal covers every waiter) until `deadlineMs`
   * (performance.now), instead of being denied for credit that was about to arrive. Denied at once when the cluster
   * bucket itself is empty (no renewal under way).
   */
  takeWaiting(req: RedisCharges, deadlineMs: number): Status | Promise<Status> {
    const st = this.take(req)
    const wait = st === Status.DENIED ? this.shortWait : null
    if (wait === null || performance.now() >= deadlineMs) return st
    const e = this.shortEntry!
    const cost = this.shortCost
    e.demand += cost
    return wait.then(() => {
      e.demand -= cost
      return this.takeWaiting(req, deadlineMs)
    })
  }

  /** Lease for (limit, scope) now and wait for the grant (at start, for buckets known in advance). */
  async prefetch(limit: CompiledLimit, scope: string): Promise<number> {
    const e = this.entry(limit, scope)
    e.size = e.max
    await this.renew(e, performance.now(), 0)
    return e.credit
  }

  /** Credit held for (limit, scope). */
  credit(limit: CompiledLimit, scope: string): number {
    return this.leases.get(this.limiter.key(limit, scope))?.credit ?? 0
  }

  /** Give unused credit back to the cluster buckets (one script call); resolves false if Redis failed. */
  async close(): Promise<boolean> {
    const sub = new Charges()
    const deltas: number[] = []
    for (const e of this.leases.values()) {
      if (e.credit <= 0) continue
      sub.add(e.limit, e.scope, 0)
      deltas.push(-e.credit)
      this.returned += e.credit
      e.credit = 0
    }
    this.leases.clear()
    return sub.length === 0 ? true : this.limiter.adjust(sub, deltas)
  }

  private end(req: RedisCharges, st: Status, decider: number, retryNs: number): Status {
    req.status = st
    req.decider = decider
    req.retryNs = retryNs
    return st
  }

  private entry(limit: CompiledLimit, scope: string): Lease {
    const key = this.limiter.key(limit, scope)
    let e = this.leases.get(key)
    if (e === undefined) {
      e = new Lease(limit, scope, key, this.maxLease(limit))
      this.leases.set(key, e)
    }
    return e
  }

  // one lease call in flight per bucket; the size follows this proxy's rate since the last grant
  private renew(e: Lease, now: number, need: number): Promise<void> | undefined {
    if (e.inFlight || now < e.nextAt) return undefined
    if (e.since > 0 && now > e.since) {
      const rate = e.used / (now - e.since)
      e.size = Math.min(e.max, Math.max(1, Math.ceil(rate * this.horizonMs)))
    }
    // waiting demand may raise a renewal up to the lease cap, never past it: the overshoot bound counts on L
    const want = Math.max(Math.min(Math.max(e.size, e.demand), e.max), need) - e.credit
    if (want <= 0) return undefined
    e.inFlight = true
    this.renewals++
    const l = e.limit
    e.pending = this.limiter.script(LEASE_LUA, 1, [e.key, l.tNs / 1000, l.burst, want]).then(
      (r) => this.granted(e, r as unknown[], want),
      (err: Error) => {
        e.inFlight = false
        e.pending = null
        this.failures++
        this.limiter.failed(err)
      },
    )
    return e.pending
  }

  private granted(e: Lease, r: unknown[], want: number): void {
    const now = performance.now()
    const g = Number(r[0])
    e.inFlight = false
    e.pending = null
    e.credit += g
    e.used = 0
    e.since = now
    this.leased += g
    if (g < want) {
      // the cluster bucket is full: ask again when one more unit would conform
      const l = e.limit
      const waitNs = Number(r[3]) + l.tNs - l.tauNs
      e.nextAt = now + Math.max(waitNs, 0) / 1e6
    }
  }
}
