// The state of every upstream target that all threads of a generation share, in one SharedArrayBuffer: requests in
// flight (so two workers don't pile on one target), failures in a row and ejections (passive outlier detection),
// the active health checker's verdict, and a latency EWMA. The main thread creates it once per generation; a reload
// keeps it, so a target that stays in the config keeps its counts and its ejection.
//
// A target's slot is found by a 64-bit hash of "upstream\0url" in an open-addressed table: any thread that meets
// a target first claims its slot with one compare-and-swap, so the main thread (health checks) and every worker
// (plans compiled independently) land on the same slot without messages. Lookups happen when a plan is compiled,
// never per request: the plan keeps the slot numbers.
import { createHash } from 'node:crypto'

/** Int32 words per slot */
const W = 16
const STATE = 0
const HASH_A = 1
const HASH_B = 2
const INFLIGHT = 3
const FAILS = 4
const EJECTIONS = 5
/** 0: healthy (or not checked), 1: the active checker says unhealthy */
const DOWN = 6
/** active checks: passes (> 0) or failures (< 0) in a row */
const STREAK = 7
/** provider account slots (src/traffic/provider-limits.ts): rate-limit headers that did not parse */
const MALFORMED = 8
/** provider account slots: requests answered locally because the account was exhausted */
const REFUSED = 9
/** upstream (account) slots: requests of this upstream that are being retried now (the retry budget) */
const RETRYING = 10
/** upstream (account) and route slots: requests refused by the bulkhead */
const SHED = 11
/** upstream (account) slots: retries refused by the retry budget */
const BUDGET_DENIED = 12
/** upstream (account) slots with an adaptive limit: 1 while one thread updates the limit (try-lock) */
const ADAPT_LOCK = 13
/** upstream (account) slots: latency samples taken by the adaptive limit (its long average warms up on the first) */
const ADAPT_SAMPLES = 14
/** upstream (account) slots: requests waiting in the bulkhead's queue, all workers (src/traffic/wait-queue.ts) */
const WAITING = 15

/** Float64 words per slot */
const F = 10
/** epoch ms until which the target is ejected (0: not ejected) */
const EJECTED_UNTIL = 0
/** latency EWMA of response headers, ms (0: no sample yet) */
const EWMA = 1
/** epoch ms when the last ejection ended: a target quiet for max_ejection starts its backoff from the base again */
const LAST_EJECTION = 2
/** provider account slots: epoch ms until which the provider said the account is exhausted (0: it did not) */
const QUOTA_UNTIL = 3
/** provider account slots: the last remaining requests / tokens it reported (-1: never reported) */
const REMAINING_REQUESTS = 4
const REMAINING_TOKENS = 5
/** upstream (account) slots: the adaptive concurrency limit (0: not set yet) and its long-term latency average, ms */
const ADAPT_LIMIT = 6
const ADAPT_LONG_RTT = 7
/** provider account slots: the limit per minute it reported last, requests / tokens (0: never) */
const LIMIT_REQUESTS = 8
const LIMIT_TOKENS = 9

const FREE = 0
const CLAIMING = 1
const READY = 2

export const TARGET_CAPACITY = 1024

/**
 * What one slot carries from a generation to the next at an upgrade: ejections and health verdicts (a target
 * ejected or down stays so), the provider's blocks and reported limits, the adaptive limit, the latency EWMA. Times
 * are epoch ms, so they mean the same in the next process. In-flight counts and counters are the old generation's.
 */
export interface SlotState {
  ejected_until: number
  ejections: number
  last_ejection: number
  down: boolean
  /** active checks in a row (targets) or which remaining counts were reported (accounts) */
  streak: number
  ewma: number
  quota_until: number
  remaining_requests: number
  remaining_tokens: number
  limit_requests: number
  limit_tokens: number
  adapt_limit: number
  adapt_long_rtt: number
  adapt_samples: number
}

export class TargetTable {
  readonly sab: SharedArrayBuffer
  readonly cap: number
  readonly i32: Int32Array
  readonly f64: Float64Array

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab
    this.cap = Math.floor(sab.byteLength / (W * 4 + F * 8))
    this.i32 = new Int32Array(sab, 0, this.cap * W)
    this.f64 = new Float64Array(sab, this.cap * W * 4, this.cap * F)
  }

  static create(cap = TARGET_CAPACITY): TargetTable {
    return new TargetTable(new SharedArrayBuffer(cap * (W * 4 + F * 8)))
  }

  /**
   * The slot of a target, claimed if new; -1 when the table is full (the caller then counts in a table of its own
   * thread: balancing still works, only not across workers).
   */
  slot(upstream: string, url: string): number {
    const h = createHash('sha256').update(upstream).update('\0').update(url).digest()
    const a = h.readInt32LE(0)
    const b = h.readInt32LE(4)
    const i32 = this.i32
    const start = (h.readUInt32LE(8) % this.cap)
    for (let k = 0; k < this.cap; k++) {
      const i = (start + k) % this.cap
      const o = i * W
      let st = Atomics.compareExchange(i32, o + STATE, FREE, CLAIMING)
      if (st === FREE) {
        Atomics.store(i32, o + HASH_A, a)
        Atomics.store(i32, o + HASH_B, b)
        Atomics.store(i32, o + STATE, READY)
        return i
      }
      // another thread is writing this slot's hash right now: two stores away
      while (st === CLAIMING) st = Atomics.load(i32, o + STATE)
      if (Atomics.load(i32, o + HASH_A) === a && Atomics.load(i32, o + HASH_B) === b) return i
    }
    return -1
  }

  inflight(i: number): number {
    return Atomics.load(this.i32, i * W + INFLIGHT)
  }

  acquire(i: number): void {
    Atomics.add(this.i32, i * W + INFLIGHT, 1)
  }

  release(i: number): void {
    Atomics.sub(this.i32, i * W + INFLIGHT, 1)
    // a place came free: the workers with requests queued for it look again (src/traffic/wait-queue.ts)
    if (Atomics.load(this.i32, i * W + WAITING) !== 0) Atomics.notify(this.i32, i * W + INFLIGHT)
  }

  /** Where a slot's in-flight count is in i32, for Atomics.waitAsync on it. */
  inflightIndex(i: number): number {
    return i * W + INFLIGHT
  }

  waiting(i: number): number {
    return Atomics.load(this.i32, i * W + WAITING)
  }

  /** Take one of `size` places in the slot's wait queue; false when it is full. */
  startWaiting(i: number, size: number): boolean {
    return this.#incrementBelow(i * W + WAITING, size)
  }

  /** Add 1 to the word at `o` if it stays within `bound`, by compare-and-swap: never above it, even for an instant. */
  #incrementBelow(o: number, bound: number): boolean {
    for (let v = Atomics.load(this.i32, o); ;) {
      if (v >= bound) return false
      const was = Atomics.compareExchange(this.i32, o, v, v + 1)
      if (was === v) return true
      v = was
    }
  }

  stopWaiting(i: number): void {
    Atomics.sub(this.i32, i * W + WAITING, 1)
  }

  /** Usable now: not ejected and not marked down by the active checker. */
  usable(i: number, now: number): boolean {
    return Atomics.load(this.i32, i * W + DOWN) === 0 && this.f64[i * F + EJECTED_UNTIL] <= now
  }

  ejectedUntil(i: number): number {
    return this.f64[i * F + EJECTED_UNTIL]
  }

  down(i: number): boolean {
    return Atomics.load(this.i32, i * W + DOWN) === 1
  }

  ewma(i: number): number {
    return this.f64[i * F + EWMA]
  }

  /**
   * One latency sample into the EWMA (weight `alpha` for the new sample). Several threads may write at once and
   * one sample may be lost: the average is a hint for the balancer, not an account.
   */
  sample(i: number, ms: number, alpha: number): void {
    const o = i * F + EWMA
    const old = this.f64[o]
    this.f64[o] = old === 0 ? ms : old + alpha * (ms - old)
  }

  /** A request to the target succeeded: its run of failures ends. */
  succeeded(i: number): void {
    if (Atomics.load(this.i32, i * W + FAILS) !== 0) Atomics.store(this.i32, i * W + FAILS, 0)
  }

  /** A request failed; returns the failures in a row, this one included. */
  failed(i: number): number {
    return Atomics.add(this.i32, i * W + FAILS, 1) + 1
  }

  /**
   * Eject the target until now + base · 2^(ejections so far), at most `max`; returns the ejection time in ms, or
   * 0 when another thread ejected it first (the failures that made both decide are the same run). The run of
   * failures starts again.
   */
  eject(i: number, now: number, baseMs: number, maxMs: number): number {
    const f = i * F
    if (this.f64[f + EJECTED_UNTIL] > now) return 0
    const o = i * W
    // the first thread to reset the run of failures does the ejecting
    const run = Atomics.exchange(this.i32, o + FAILS, 0)
    if (run === 0) return 0
    // quiet for a whole max_ejection since the last one: the backoff starts again from the base
    if (this.f64[f + LAST_EJECTION] !== 0 && now - this.f64[f + LAST_EJECTION] > maxMs) Atomics.store(this.i32, o + EJECTIONS, 0)
    const n = Atomics.add(this.i32, o + EJECTIONS, 1)
    const ms = Math.min(maxMs, baseMs * 2 ** Math.min(n, 30))
    this.f64[f + EJECTED_UNTIL] = now + ms
    this.f64[f + LAST_EJECTION] = now + ms
    return ms
  }

  ejections(i: number): number {
    return Atomics.load(this.i32, i * W + EJECTIONS)
  }

  /**
   * One active check's outcome; returns the new verdict when it changed (true: up again, false: down), else null.
   * Written by the main thread only.
   */
  check(i: number, ok: boolean, healthy: number, unhealthy: number): boolean | null {
    const o = i * W
    const prev = this.i32[o + STREAK]
    const streak = ok ? (prev > 0 ? prev + 1 : 1) : (prev < 0 ? prev - 1 : -1)
    this.i32[o + STREAK] = streak
    const down = Atomics.load(this.i32, o + DOWN) === 1
    if (down && streak >= healthy) {
      Atomics.store(this.i32, o + DOWN, 0)
      return true
    }
    if (!down && -streak >= unhealthy) {
      Atomics.store(this.i32, o + DOWN, 1)
      return false
    }
    return null
  }

  /** Provider account: exhausted until (epoch ms); only ever moved later, so an older answer cannot lift a block. */
  quotaUntil(i: number): number {
    return this.f64[i * F + QUOTA_UNTIL]
  }

  blockQuota(i: number, until: number): void {
    if (until > this.f64[i * F + QUOTA_UNTIL]) this.f64[i * F + QUOTA_UNTIL] = until
  }

  /** Provider account: the remaining requests and tokens it reported last (-1: not reported yet). */
  remaining(i: number, kind: 'requests' | 'tokens'): number {
    const v = this.f64[i * F + (kind === 'requests' ? REMAINING_REQUESTS : REMAINING_TOKENS)]
    return v === 0 && !this.#reported(i, kind) ? -1 : v
  }

  setRemaining(i: number, kind: 'requests' | 'tokens', v: number): void {
    this.f64[i * F + (kind === 'requests' ? REMAINING_REQUESTS : REMAINING_TOKENS)] = v
    // bit 0: requests reported, bit 1: tokens (a 0 that was reported is not "never")
    Atomics.or(this.i32, i * W + STREAK, kind === 'requests' ? 1 : 2)
  }

  #reported(i: number, kind: 'requests' | 'tokens'): boolean {
    return (Atomics.load(this.i32, i * W + STREAK) & (kind === 'requests' ? 1 : 2)) !== 0
  }

  /** Provider account: the limit per minute it reported last (0: never reported). */
  providerLimit(i: number, kind: 'requests' | 'tokens'): number {
    return this.f64[i * F + (kind === 'requests' ? LIMIT_REQUESTS : LIMIT_TOKENS)]
  }

  setProviderLimit(i: number, kind: 'requests' | 'tokens', v: number): void {
    this.f64[i * F + (kind === 'requests' ? LIMIT_REQUESTS : LIMIT_TOKENS)] = v
  }

  malformed(i: number): number {
    return Atomics.load(this.i32, i * W + MALFORMED)
  }

  countMalformed(i: number): void {
    Atomics.add(this.i32, i * W + MALFORMED, 1)
  }

  refused(i: number): number {
    return Atomics.load(this.i32, i * W + REFUSED)
  }

  countRefused(i: number): void {
    Atomics.add(this.i32, i * W + REFUSED, 1)
  }

  /** Take one of `max` places (0: no bound); false, and nothing taken, when all are taken. */
  enter(i: number, max: number): boolean {
    if (max <= 0) {
      Atomics.add(this.i32, i * W + INFLIGHT, 1)
      return true
    }
    // compare-and-swap, not add-then-undo: a refused request never shows as in flight, even for an instant, so a
    // higher priority checking a larger bound at the same moment is never refused because of it
    return this.#incrementBelow(i * W + INFLIGHT, max)
  }

  countShed(i: number): void {
    Atomics.add(this.i32, i * W + SHED, 1)
  }

  retrying(i: number): number {
    return Atomics.load(this.i32, i * W + RETRYING)
  }

  startRetrying(i: number): void {
    Atomics.add(this.i32, i * W + RETRYING, 1)
  }

  stopRetrying(i: number): void {
    Atomics.sub(this.i32, i * W + RETRYING, 1)
  }

  shed(i: number): number {
    return Atomics.load(this.i32, i * W + SHED)
  }

  budgetDenied(i: number): number {
    return Atomics.load(this.i32, i * W + BUDGET_DENIED)
  }

  countBudgetDenied(i: number): void {
    Atomics.add(this.i32, i * W + BUDGET_DENIED, 1)
  }

  /** The adaptive limit's state (account slots): the limit (0: not set yet), its long-term latency average, samples. */
  adaptLimit(i: number): number {
    return this.f64[i * F + ADAPT_LIMIT]
  }

  adaptLongRtt(i: number): number {
    return this.f64[i * F + ADAPT_LONG_RTT]
  }

  adaptSamples(i: number): number {
    return Atomics.load(this.i32, i * W + ADAPT_SAMPLES)
  }

  /** One thread at a time updates the limit; false: another one is at it (the caller drops its sample). */
  adaptLock(i: number): boolean {
    return Atomics.compareExchange(this.i32, i * W + ADAPT_LOCK, 0, 1) === 0
  }

  adaptStore(i: number, limit: number, longRtt: number): void {
    this.f64[i * F + ADAPT_LIMIT] = limit
    this.f64[i * F + ADAPT_LONG_RTT] = longRtt
    Atomics.add(this.i32, i * W + ADAPT_SAMPLES, 1)
    // the release store publishes the two floats to the next thread that takes the lock
    Atomics.store(this.i32, i * W + ADAPT_LOCK, 0)
  }

  adaptUnlock(i: number): void {
    Atomics.store(this.i32, i * W + ADAPT_LOCK, 0)
  }

  /** A slot's state for the next generation (src/traffic/handover.ts): what is not a counter of this generation's. */
  exportSlot(i: number): SlotState {
    const o = i * W
    const f = i * F
    return {
      ejected_until: this.f64[f + EJECTED_UNTIL], ejections: Atomics.load(this.i32, o + EJECTIONS), last_ejection: this.f64[f + LAST_EJECTION],
      down: Atomics.load(this.i32, o + DOWN) === 1, streak: Atomics.load(this.i32, o + STREAK), ewma: this.f64[f + EWMA],
      quota_until: this.f64[f + QUOTA_UNTIL], remaining_requests: this.f64[f + REMAINING_REQUESTS], remaining_tokens: this.f64[f + REMAINING_TOKENS],
      limit_requests: this.f64[f + LIMIT_REQUESTS], limit_tokens: this.f64[f + LIMIT_TOKENS],
      adapt_limit: this.f64[f + ADAPT_LIMIT], adapt_long_rtt: this.f64[f + ADAPT_LONG_RTT], adapt_samples: Atomics.load(this.i32, o + ADAPT_SAMPLES),
    }
  }

  /** Continue a slot of the previous generation (before any worker uses this table). */
  importSlot(i: number, st: SlotState): void {
    const o = i * W
    const f = i * F
    this.f64[f + EJECTED_UNTIL] = st.ejected_until
    Atomics.store(this.i32, o + EJECTIONS, st.ejections)
    this.f64[f + LAST_EJECTION] = st.last_ejection
    Atomics.store(this.i32, o + DOWN, st.down ? 1 : 0)
    Atomics.store(this.i32, o + STREAK, st.streak)
    this.f64[f + EWMA] = st.ewma
    this.f64[f + QUOTA_UNTIL] = st.quota_until
    this.f64[f + REMAINING_REQUESTS] = st.remaining_requests
    this.f64[f + REMAINING_TOKENS] = st.remaining_tokens
    this.f64[f + LIMIT_REQUESTS] = st.limit_requests
    this.f64[f + LIMIT_TOKENS] = st.limit_tokens
    this.f64[f + ADAPT_LIMIT] = st.adapt_limit
    this.f64[f + ADAPT_LONG_RTT] = st.adapt_long_rtt
    Atomics.store(this.i32, o + ADAPT_SAMPLES, st.adapt_samples)
  }

  /** Health checks removed from an upstream (reload): nothing marks its targets down any more. */
  clearCheck(i: number): void {
    this.i32[i * W + STREAK] = 0
    Atomics.store(this.i32, i * W + DOWN, 0)
  }
}

/** This thread's table: the generation's once attached (worker start), or a private one (in-process plans, tests). */
let current: TargetTable | null = null
let overflow: TargetTable | null = null

export function attachTargets(sab: SharedArrayBuffer | null): void {
  current = sab === null ? null : new TargetTable(sab)
}

export function targetTable(): TargetTable {
  return (current ??= TargetTable.create())
}

/** Where a target goes when the shared table is full: a private table of this thread. */
export function overflowTable(): TargetTable {
  return (overflow ??= TargetTable.create())
}
