// When a generation dies, how long the master waits before starting the next one. The first restart is immediate
// (the service must be back within a second); deaths in a row double the wait up to a ceiling, so a generation
// that crashes at start (bad upstream socket, a corrupt dist/) does not spin the CPU. A generation that stays up
// STABLE_MS clears the count.

export const CRASH_LOOP_AT = 3
const FIRST_DELAY_MS = 0
const BASE_MS = 250
const MAX_MS = 30_000
const STABLE_MS = 30_000

export class CrashBackoff {
  /** deaths in a row without a stable generation in between */
  consecutive = 0
  /** all restarts since the master started */
  restarts = 0
  readonly #stableMs: number

  constructor(stableMs = STABLE_MS) {
    this.#stableMs = stableMs
  }

  /** A generation died after `upMs` of service (0 when it never became ready): the delay before the next one. */
  died(upMs: number): number {
    if (upMs >= this.#stableMs) this.consecutive = 0
    this.consecutive++
    this.restarts++
    return delayFor(this.consecutive)
  }

  get crashLoop(): boolean {
    return this.consecutive >= CRASH_LOOP_AT
  }

  /** A generation has served for the stable period: the next death counts as the first. */
  stable(): void {
    this.consecutive = 0
  }
}

/** 0, 250 ms, 500 ms, 1 s, 2 s … capped at 30 s. */
export function delayFor(consecutive: number): number {
  if (consecutive <= 1) return FIRST_DELAY_MS
  return Math.min(MAX_MS, BASE_MS * 2 ** (consecutive - 2))
}
