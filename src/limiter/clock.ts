// One clock read per request: callers take `clock.now()` once and pass it to every bucket they touch (reading the
// clock costs more than a CAS). The value is nanoseconds since the Unix epoch as a bigint, so bucket state stays
// meaningful across restarts and snapshots.
//
// now = anchor + monotonic ns. The anchor (epoch ns - monotonic ns) is measured once where the bucket table is
// created and stored in its header, so every thread that attaches the table computes `now` from the same anchor: no
// skew between threads, and no jumps when NTP steps the wall clock (the monotonic clock is system-wide).
import { readFileSync } from 'node:fs'

// Tests only: LEAKY_TEST_CLOCK=FILE makes every limiter clock read FILE on each call (an ISO-8601 instant or epoch
// ms) and stand still at that instant, so a test can move a running proxy to a calendar window's end and past it.
// Read per call (slow) on purpose: nothing caches a test time, and the switch is off unless the env names a file.
const TEST_CLOCK_FILE = process.env.LEAKY_TEST_CLOCK ?? ''

export class Clock {
  readonly anchorNs: bigint

  constructor(anchorNs: bigint = measureAnchorNs()) {
    this.anchorNs = anchorNs
  }

  /** Nanoseconds since the Unix epoch. */
  now(): bigint {
    if (TEST_CLOCK_FILE !== '') return testNow(TEST_CLOCK_FILE, this.anchorNs)
    return this.anchorNs + process.hrtime.bigint()
  }
}

/** The file the test clock reads, '' when it is off (for the start-up warning). */
export function testClockFile(): string {
  return TEST_CLOCK_FILE
}

function testNow(file: string, anchorNs: bigint): bigint {
  let text = ''
  try {
    text = readFileSync(file, 'utf8').trim()
  } catch {
    // unreadable: real time, so a broken test setup shows up as a failed assertion, never as a crash
  }
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text)
  return Number.isFinite(ms) ? BigInt(ms) * NS_PER_MS : anchorNs + process.hrtime.bigint()
}

/** epoch ns - monotonic ns, at microsecond precision (what performance.timeOrigin offers). */
export function measureAnchorNs(): bigint {
  const mono = process.hrtime.bigint()
  const epochUs = Math.round((performance.timeOrigin + performance.now()) * 1000)
  return BigInt(epochUs) * 1000n - mono
}

export const NS_PER_MS = 1_000_000n
export const NS_PER_S = 1_000_000_000n
