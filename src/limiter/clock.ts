// One clock read per request: callers take `clock.now()` once and pass it to every bucket they touch (reading the
// clock costs more than a CAS). The value is nanoseconds since the Unix epoch as a bigint, so bucket state stays
// meaningful across restarts and snapshots.
//
// now = anchor + monotonic ns. The anchor (epoch ns - monotonic ns) is measured once where the bucket table is
// created and stored in its header, so every thread that attaches the table computes `now` from the same anchor: no
// skew between threads, and no jumps when NTP steps the wall clock (the monotonic clock is system-wide).

export class Clock {
  readonly anchorNs: bigint

  constructor(anchorNs: bigint = measureAnchorNs()) {
    this.anchorNs = anchorNs
  }

  /** Nanoseconds since the Unix epoch. */
  now(): bigint {
    return this.anchorNs + process.hrtime.bigint()
  }
}

/** epoch ns - monotonic ns, at microsecond precision (what performance.timeOrigin offers). */
export function measureAnchorNs(): bigint {
  const mono = process.hrtime.bigint()
  const epochUs = Math.round((performance.timeOrigin + performance.now()) * 1000)
  return BigInt(epochUs) * 1000n - mono
}

export const NS_PER_MS = 1_000_000n
export const NS_PER_S = 1_000_000_000n
