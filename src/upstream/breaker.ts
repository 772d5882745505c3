// The circuit breaker of one upstream, in one worker thread: closed while the upstream mostly works; open once at
// least min_requests attempts ended inside the sliding window and the failed share reached failure_ratio; after
// cooldown it lets one trial request through (half-open), whose success closes it and whose failure reopens it.
//
// Pure state: the caller passes the clock in and gets transitions back as values, so the forward stage decides what
// to log and count, and tests drive it with plain numbers. Each worker thread keeps its own breaker: a worker sees
// only its share of the traffic, so N workers need about N × min_requests failures before all of them open.

/** The breaker's answer for one attempt. TRIAL: the one request let through while half-open. */
import type { UpstreamConfig } from '../config/index.js'

export const Admission = { PASS: 0, TRIAL: 1, DENY: 2 } as const
export type Admission = (typeof Admission)[keyof typeof Admission]

/** What one recorded outcome changed. OPENED is also a failed trial reopening the breaker. */
export const Transition = { NONE: 0, OPENED: 1, CLOSED: 2 } as const
export type Transition = (typeof Transition)[keyof typeof Transition]

/** An upstream's `breaker:` section, as the schema validates it. */
export type BreakerConfig = NonNullable<UpstreamConfig['breaker']>

const enum State {
  CLOSED = 0,
  OPEN = 1,
  HALF_OPEN = 2,
}

/** The window is a ring of this many slots: it slides in steps of window/10, and counting is O(1) per outcome. */
const SLOTS = 10

export class Breaker {
  readonly failureRatio: number
  readonly minRequests: number
  readonly windowMs: number
  readonly cooldownMs: number
  readonly #slotMs: number
  #state = State.CLOSED
  readonly #total = new Int32Array(SLOTS)
  readonly #failed = new Int32Array(SLOTS)
  #sumTotal = 0
  #sumFailed = 0
  /** absolute number (now / slotMs) of the newest slot; -1 before the first outcome */
  #head = -1
  #openedAt = 0
  #until = 0
  #trialOut = false

  constructor(cfg: BreakerConfig) {
    this.failureRatio = cfg.failure_ratio
    this.minRequests = cfg.min_requests
    this.windowMs = cfg.window
    this.cooldownMs = cfg.cooldown
    this.#slotMs = Math.max(1, cfg.window / SLOTS)
  }

  /** Open or half-open: requests are turned away (all but the trial). */
  get open(): boolean {
    return this.#state !== State.CLOSED
  }

  /** Attempts that ended in the window and how many failed (for the log line; frozen while open, cleared on close). */
  get requests(): number {
    return this.#sumTotal
  }

  get failures(): number {
    return this.#sumFailed
  }

  /** When the breaker last opened (the clock the caller passes), for the "closed" log line. */
  get openedAt(): number {
    return this.#openedAt
  }

  /** Same settings: a reload that leaves the section alone keeps the breaker and its state. */
  sameAs(cfg: BreakerConfig): boolean {
    return cfg.failure_ratio === this.failureRatio && cfg.min_requests === this.minRequests && cfg.window === this.windowMs &&
      cfg.cooldown === this.cooldownMs
  }

  admit(now: number): Admission {
    switch (this.#state) {
      case State.CLOSED:
        return Admission.PASS
      case State.OPEN:
        if (now < this.#until) return Admission.DENY
        this.#state = State.HALF_OPEN
        this.#trialOut = true
        return Admission.TRIAL
      case State.HALF_OPEN:
        if (this.#trialOut) return Admission.DENY
        this.#trialOut = true
        return Admission.TRIAL
    }
  }

  /**
   * One attempt ended: `failed` for connect, timeout, reset, invalid response and 5xx. `trial` says the attempt was
   * admitted as the trial. Outcomes of attempts admitted before the breaker opened are ignored while it is open.
   */
  record(now: number, failed: boolean, trial: boolean): Transition {
    if (trial) {
      this.#trialOut = false
      if (this.#state !== State.HALF_OPEN) return Transition.NONE
      if (failed) {
        this.#open(now)
        return Transition.OPENED
      }
      this.#state = State.CLOSED
      this.#clear()
      return Transition.CLOSED
    }
    if (this.#state !== State.CLOSED) return Transition.NONE
    const slot = this.#advance(now)
    this.#total[slot]++
    this.#sumTotal++
    if (!failed) return Transition.NONE
    this.#failed[slot]++
    this.#sumFailed++
    if (this.#sumTotal < this.minRequests || this.#sumFailed < this.failureRatio * this.#sumTotal) return Transition.NONE
    this.#open(now)
    return Transition.OPENED
  }

  /** The trial ended without an outcome (the client went away first): the next request may try instead. */
  release(trial: boolean): void {
    if (trial && this.#state === State.HALF_OPEN) this.#trialOut = false
  }

  /** Whole seconds until a trial may go through (at least 1): the Retry-After of a refused request. */
  retryAfter(now: number): number {
    const left = this.#state === State.OPEN ? this.#until - now : 0
    return left > 1000 ? Math.ceil(left / 1000) : 1
  }

  #open(now: number): void {
    this.#state = State.OPEN
    this.#openedAt = now
    this.#until = now + this.cooldownMs
  }

  /** Closing starts a fresh window: the failures that opened the breaker must not reopen it on the next one. */
  #clear(): void {
    this.#total.fill(0)
    this.#failed.fill(0)
    this.#sumTotal = 0
    this.#sumFailed = 0
    this.#head = -1
  }

  /** Slide the window to `now`, emptying the slots that fell out of it; returns the slot `now` counts in. */
  #advance(now: number): number {
    const idx = Math.floor(now / this.#slotMs)
    const head = this.#head
    if (head < 0) {
      this.#head = idx
    } else if (idx > head) {
      const steps = idx - head < SLOTS ? idx - head : SLOTS
      for (let k = 1; k <= steps; k++) {
        const s = (head + k) % SLOTS
        this.#sumTotal -= this.#total[s]
        this.#sumFailed -= this.#failed[s]
        this.#total[s] = 0
        this.#failed[s] = 0
      }
      this.#head = idx
    } else if (idx < head) {
      // two clock reads of one request can arrive out of order by a hair: count it in the newest slot
      return head % SLOTS
    }
    return idx % SLOTS
  }
}
