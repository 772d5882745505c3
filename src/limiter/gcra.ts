// GCRA: the leaky bucket as a meter, with one word of state per bucket, the theoretical arrival time TAT.
// Time is integer nanoseconds since the Unix epoch (bigint): int64 reaches the year 2262 and a monthly window is only
// ~2.6e15 ns, so there is range for any limit compileLimit accepts (it bounds tau). Emission interval T = period / rate,
// tolerance tau = burst * T. Everything here is pure and total: no throw, no allocation beyond the bigint results.
//
//   conforms      iff max(TAT, now) + c*T - now <= tau     then TAT <- max(TAT, now) + c*T
//   retry after       max(TAT, now) + c*T - now - tau       (how long until the same request would conform)
//   refund            TAT <- max(TAT - c*T, now)            (c > 0 units given back)
//   level             (TAT - now) / T                       (units in the bucket; <= 0 means empty)
//
// Refund rule: a refund can empty a bucket but never make it "more than empty". Without the clamp, a refund on a
// drained bucket would push TAT into the past and hand out credit beyond the burst (tau) on the next requests. The
// clamp also makes an all-or-nothing rollback exact: charge then refund of the same c returns max(TAT, now), which is
// the same bucket state as TAT itself (any TAT <= now means empty), and charges made by others in between survive it.

/** admit() result for a request that does not conform. TATs are ns since the epoch and never negative. */
export const NONCONFORMING = -1n

/** New TAT if a request of increment `inc` (= c*T) conforms, else NONCONFORMING. */
export function admit(tat: bigint, now: bigint, inc: bigint, tau: bigint): bigint {
  const next = (tat > now ? tat : now) + inc
  return next - now <= tau ? next : NONCONFORMING
}

/** Nanoseconds until a request of increment `inc` would conform (0 if it conforms now). */
export function retryAfter(tat: bigint, now: bigint, inc: bigint, tau: bigint): bigint {
  const wait = (tat > now ? tat : now) + inc - now - tau
  return wait > 0n ? wait : 0n
}

/** TAT after giving back `dec` (= c*T, c > 0): never earlier than `now`, i.e. never below an empty bucket. */
export function refund(tat: bigint, now: bigint, dec: bigint): bigint {
  const next = tat - dec
  return next > now ? next : now
}

/**
 * TAT after an unconditional charge (usage that already happened: the bucket may go beyond tau, the debt is paid by
 * later denials). `cap` bounds how far in the future TAT may go so that the int64 word cannot overflow.
 */
export function force(tat: bigint, now: bigint, inc: bigint, cap: bigint): bigint {
  const next = (tat > now ? tat : now) + inc
  return next - now > cap ? now + cap : next
}

/** Units in the bucket at `now` (0 when drained). */
export function level(tat: bigint, now: bigint, t: bigint): number {
  return tat > now ? Number(tat - now) / Number(t) : 0
}

/** Nanoseconds from `now` until the bucket is empty (0 when drained). */
export function drainIn(tat: bigint, now: bigint): bigint {
  return tat > now ? tat - now : 0n
}
