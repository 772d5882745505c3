// Which target of an upstream takes the next attempt. Built once per upstream per plan; `choose` runs per attempt
// and allocates nothing. Targets that are ejected (passive outlier detection), marked down by the active health
// checker, or weighted 0 are left out; the in-flight counts and latencies it compares live in the generation's
// shared target table (target-table.ts), so every worker sees every other worker's load.
//
// p2c_least_inflight: the power of two choices (Mitzenmacher): two distinct random usable targets, the one with
// fewer requests in flight per unit of weight wins. As good as scanning all targets for the least loaded one,
// without the herd that "least loaded" causes when all workers act on the same stale view.
// ewma_latency: the same two choices, scored by latency EWMA × (in flight + 1) / weight (Finagle's peak EWMA idea:
// a slow target looks as busy as its queue would make it).
// round_robin: in turn, skipping unusable targets. weighted: nginx's smooth weighted round-robin, per worker.
import type { TargetTable } from './target-table.js'
import { targetTable, overflowTable } from './target-table.js'
import { ACCOUNT } from './provider-limits.js'
import { AdaptiveLimit, type AdaptiveConfig } from './adaptive.js'

export type BalancePolicy = 'p2c_least_inflight' | 'round_robin' | 'weighted' | 'ewma_latency'

export interface OutlierConfig {
  consecutive_failures: number
  base_ejection: number
  max_ejection: number
  max_ejected_percent: number
}

/** Weight of a latency sample in the EWMA: about the last 10 responses count */
const EWMA_ALPHA = 0.2

export class Balancer {
  readonly policy: BalancePolicy
  readonly table: TargetTable
  /** slot of each target in `table` */
  readonly slots: Int32Array
  /** slot of the upstream's provider account (src/traffic/provider-limits.ts) */
  readonly account: number
  readonly weights: Float64Array
  readonly n: number
  readonly outlier: OutlierConfig
  /** most targets that may be ejected at once */
  readonly maxEjected: number
  #rr = 0
  /** smooth weighted round-robin: current weights, this worker's */
  readonly #cw: Float64Array
  /** the upstream's adaptive concurrency limit, fed by the latencies seen here (null: none configured) */
  readonly adaptive: AdaptiveLimit | null

  constructor(upstream: string, urls: readonly string[], weights: readonly number[] | undefined, policy: BalancePolicy, outlier: OutlierConfig, adaptive?: AdaptiveConfig) {
    this.policy = policy
    this.n = urls.length
    this.outlier = outlier
    this.weights = Float64Array.from(urls, (_, i) => weights?.[i] ?? 1)
    this.#cw = new Float64Array(this.n)
    this.slots = new Int32Array(this.n)
    let table = targetTable()
    let account = table.slot(upstream, ACCOUNT)
    for (let i = 0; i < this.n; i++) {
      const s = account < 0 ? -1 : table.slot(upstream, urls[i])
      if (s < 0 && table !== overflowTable()) {
        // the shared table is full: this upstream counts on its own in this thread
        table = overflowTable()
        account = table.slot(upstream, ACCOUNT)
        i = -1
        continue
      }
      this.slots[i] = s
    }
    this.table = table
    this.account = account
    this.adaptive = adaptive === undefined ? null : new AdaptiveLimit(adaptive, table, account)
    // Envoy's max_ejection_percent, but one target may always go when there are several: a 2-target upstream with
    // one dead target at 50 % must be able to eject it
    this.maxEjected = this.n <= 1 ? 0 : Math.max(1, Math.floor((this.n * outlier.max_ejected_percent) / 100))
  }

  /**
   * The target for the next attempt, or -1 when none is usable. `avoid` (the target that just failed, or -1) is
   * taken only when it is the one usable target left.
   */
  choose(now: number, avoid: number): number {
    const n = this.n
    if (n === 1) return this.usable(0, now) ? 0 : -1
    let i: number
    switch (this.policy) {
      case 'p2c_least_inflight':
      case 'ewma_latency':
        i = this.#p2c(now, avoid)
        break
      case 'round_robin':
        i = this.#roundRobin(now, avoid)
        break
      case 'weighted':
        i = this.#weighted(now, avoid)
        break
      default: {
        const never: never = this.policy
        throw new Error(`unknown balance policy ${String(never)}`)
      }
    }
    if (i < 0 && avoid >= 0 && this.usable(avoid, now)) return avoid
    return i
  }

  usable(i: number, now: number): boolean {
    return this.weights[i] > 0 && this.table.usable(this.slots[i], now)
  }

  #p2c(now: number, avoid: number): number {
    const n = this.n
    const a = this.#randomUsable(Math.floor(Math.random() * n), now, avoid, -1)
    if (a < 0) return -1
    // the second draw is uniform over the other n-1 positions, then walks to a usable one
    const b = this.#randomUsable((a + 1 + Math.floor(Math.random() * (n - 1))) % n, now, avoid, a)
    if (b < 0) return a
    const sa = this.#score(a)
    const sb = this.#score(b)
    return sb < sa || (sb === sa && Math.random() < 0.5) ? b : a
  }

  #score(i: number): number {
    const inflight = this.table.inflight(this.slots[i])
    if (this.policy === 'ewma_latency') {
      // an unmeasured target scores as the fastest, so it gets measured
      return ((this.table.ewma(this.slots[i]) || 1) * (inflight + 1)) / this.weights[i]
    }
    return (inflight + 1) / this.weights[i]
  }

  /** The first usable target from `from` on (wrapping), other than `avoid` and `not`. */
  #randomUsable(from: number, now: number, avoid: number, not: number): number {
    const n = this.n
    for (let k = 0; k < n; k++) {
      const i = from + k < n ? from + k : from + k - n
      if (i !== avoid && i !== not && this.usable(i, now)) return i
    }
    return -1
  }

  #roundRobin(now: number, avoid: number): number {
    const n = this.n
    // a retry takes the target after the one that failed and leaves the turn alone: the next request still gets
    // the next target in turn
    if (avoid >= 0) return this.#randomUsable(avoid + 1 === n ? 0 : avoid + 1, now, avoid, -1)
    for (let k = 0; k < n; k++) {
      const i = this.#rr
      this.#rr = i + 1 === n ? 0 : i + 1
      if (i !== avoid && this.usable(i, now)) return i
    }
    return -1
  }

  #weighted(now: number, avoid: number): number {
    const cw = this.#cw
    let total = 0
    let best = -1
    for (let i = 0; i < this.n; i++) {
      if (i === avoid || !this.usable(i, now)) continue
      const w = this.weights[i]
      cw[i] += w
      total += w
      if (best < 0 || cw[i] > cw[best]) best = i
    }
    if (best >= 0) cw[best] -= total
    return best
  }

  /** An attempt starts on target i. */
  acquire(i: number): void {
    this.table.acquire(this.slots[i])
  }

  /** The attempt on target i ended (answered, failed, dropped or abandoned). */
  release(i: number): void {
    this.table.release(this.slots[i])
  }

  /** Target i answered (response headers), after `ms`. A 5xx is a failure for ejection, not a latency sample's end. */
  answered(i: number, ms: number, status: number, now: number): number {
    const slot = this.slots[i]
    this.table.sample(slot, ms, EWMA_ALPHA)
    // a 429 or 5xx comes back fast because it was refused: no measure of how much the upstream can take
    if (this.adaptive !== null && status !== 429 && status < 500) this.adaptive.sample(ms, this.table.inflight(this.account))
    if (status >= 500) return this.failed(i, now)
    this.table.succeeded(slot)
    return 0
  }

  /**
   * Target i failed (connect error, reset, timeout, 5xx). Returns the ejection time in ms when this failure ejected
   * it (the caller logs it), else 0.
   */
  failed(i: number, now: number): number {
    const o = this.outlier
    if (o.consecutive_failures === 0 || this.n === 1) return 0
    const slot = this.slots[i]
    if (this.table.failed(slot) < o.consecutive_failures) return 0
    if (this.ejectedNow(now) >= this.maxEjected) return 0
    return this.table.eject(slot, now, o.base_ejection, o.max_ejection)
  }

  ejectedNow(now: number): number {
    let e = 0
    for (let i = 0; i < this.n; i++) if (this.table.ejectedUntil(this.slots[i]) > now) e++
    return e
  }

  /** Seconds until the first unusable target may be used again (Retry-After when none is usable); at least 1. */
  retryAfter(now: number, fallbackMs: number): number {
    let soonest = Infinity
    for (let i = 0; i < this.n; i++) {
      const u = this.table.ejectedUntil(this.slots[i])
      if (u > now && u < soonest) soonest = u
    }
    const ms = soonest === Infinity ? fallbackMs : soonest - now
    return Math.max(1, Math.ceil(ms / 1000))
  }
}
