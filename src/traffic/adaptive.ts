// Adaptive concurrency: an upstream's in-flight bound that follows the latency it measures, as Netflix's
// concurrency-limits Gradient2Limit does. One limit per upstream for all worker threads: the limit, its long-term
// latency average and a try-lock live in the upstream's account slot of the generation's shared target table.
//
// Gradient2, per latency sample (time to response headers of an answered request, not 429 or 5xx):
//   long   = average of the samples (plain mean over the first 10, then an EWMA over ~600)
//   grad   = clamp(tolerance · long / sample, 0.5, 1)       — 1: no queueing; < 1: the upstream is queueing
//   limit  = (1 - smoothing) · limit + smoothing · (limit · grad + 4)
// clamped to min..max. While fewer than half the limit are in flight the limit stays (an idle upstream says
// nothing about how much it could take). When the long average is more than twice the sample (load has gone),
// it decays by 5 % a sample, so the limit recovers without waiting for 600 samples.
//
// Why Gradient2 and not Vegas: Vegas measures queueing against the smallest latency ever seen, and an LLM's time
// to first byte varies with the prompt: one short prompt (or a provider-side cache hit) pins that minimum, and
// every ordinary request then reads as queueing. Gradient2 compares against a long-term average and tolerates
// 1.5× by default, so ordinary variance does not shrink the limit, only a sustained rise does.
//
// A thread that finds another updating the limit drops its sample: the samples that do count are plenty, and
// no request ever waits for a lock.
import type { TargetTable } from './target-table.js'

export interface AdaptiveConfig {
  min: number
  max: number
  initial?: number
  tolerance: number
  smoothing: number
  /** percent of the limit kept for higher priorities */
  headroom: number
}

/** Samples averaged plainly before the long-term EWMA takes over (Netflix's warm-up window). */
const WARMUP = 10
/** The long-term EWMA's weight: about the last 600 samples (Gradient2's longWindow). */
const LONG_ALPHA = 2 / 601
/** What the limit may grow by per sample before smoothing (Gradient2's queueSize). */
const QUEUE = 4

export class AdaptiveLimit {
  readonly table: TargetTable
  readonly slot: number
  readonly min: number
  readonly max: number
  readonly initial: number
  readonly tolerance: number
  readonly smoothing: number
  /** headroom as a fraction */
  readonly headroom: number
  /** this upstream's shed counters in `table`, by tier index of the plan's PriorityPlan (-1: not counted) */
  shedSlots: Int32Array = new Int32Array(0)

  constructor(cfg: AdaptiveConfig, table: TargetTable, slot: number) {
    this.table = table
    this.slot = slot
    this.min = cfg.min
    this.max = cfg.max
    this.initial = cfg.initial ?? cfg.max
    this.tolerance = cfg.tolerance
    this.smoothing = cfg.smoothing
    this.headroom = cfg.headroom / 100
  }

  /** The limit now (not rounded), within this config's min..max (a reload may have narrowed them). */
  limit(): number {
    const l = this.table.adaptLimit(this.slot)
    return l === 0 ? this.initial : l < this.min ? this.min : l > this.max ? this.max : l
  }

  /**
   * The places a request may find taken and still enter, by its priority level (0: the highest priority, which
   * may use the whole limit; 1: the lowest, which may use limit × (1 - headroom)).
   */
  bound(level: number): number {
    return Math.floor(this.limit() * (1 - this.headroom * level))
  }

  /** One latency sample (ms) while `inflight` requests of the upstream were in flight. */
  sample(ms: number, inflight: number): void {
    const t = this.table
    const i = this.slot
    if (!t.adaptLock(i)) return
    const rtt = ms < 0.01 ? 0.01 : ms
    const n = t.adaptSamples(i)
    let long = t.adaptLongRtt(i)
    long = n < WARMUP ? (long * n + rtt) / (n + 1) : long + LONG_ALPHA * (rtt - long)
    if (long / rtt > 2) long *= 0.95
    let limit = this.limit()
    if (inflight >= limit / 2) {
      const grad = Math.max(0.5, Math.min(1, (this.tolerance * long) / rtt))
      limit = (1 - this.smoothing) * limit + this.smoothing * (limit * grad + QUEUE)
      limit = limit < this.min ? this.min : limit > this.max ? this.max : limit
    }
    t.adaptStore(i, limit, long)
  }

  countShed(tier: number): void {
    const slot = tier < this.shedSlots.length ? this.shedSlots[tier] : -1
    if (slot >= 0) this.table.countShed(slot)
  }
}

/** Where the shed count of (upstream, tier) lives in the target table: one slot per pair, found by name. */
export const SHED_SCOPE = '#adaptive-shed'
export function shedKey(upstream: string, tier: string): string {
  return `${upstream}\0${tier}`
}
