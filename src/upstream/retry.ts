// The retry policy of one upstream, compiled once from its `retry` section: which failures are worth another
// attempt, how many extra attempts, and how long to wait before each. The per-request side (counting attempts,
// the backoff timer, where the next attempt goes) is the forward stage's handler; this file only answers questions.
import type { ErrorCode } from '../errors.js'
import type { UpstreamConfig } from '../config/index.js'

/** How an attempt failed before the upstream's response headers arrived (NONE: it did not). */
export const Failure = { NONE: 0, CONNECT: 1, TIMEOUT: 2, RESET: 3, INVALID: 4 } as const
export type Failure = (typeof Failure)[keyof typeof Failure]

/** What `retry.on` lists: a failure kind, or 429 / a 5xx status. */
export type RetryCondition = 'connect' | 'timeout' | 'reset' | number

/** An upstream's `retry:` section, as the schema validates it. */
export type RetryConfig = NonNullable<UpstreamConfig['retry']>

/**
 * The conditions an upstream without a `retry` section fails over to its fallback on: the schema's default of
 * `retry.on` (src/config/schema.ts), so writing `retry: {}` changes nothing but the attempt count.
 */
export const DEFAULT_ON: readonly RetryCondition[] = ['connect', 502, 503, 504]

const FIRST_STATUS = 400
const STATUS_SPAN = 200

export class RetryPolicy {
  /** extra attempts on the same upstream after the first (0: none; the fallback may still be tried) */
  readonly attempts: number
  readonly minMs: number
  readonly maxMs: number
  /** retry budget: percent of the upstream's requests in flight, and the floor (src/traffic/bulkhead.ts) */
  readonly budget: number
  readonly minRetries: number
  /** base of the exponential ceiling: MIN, or MAX/16 when MIN is 0 (a ceiling doubling from 0 would stay 0) */
  readonly #base: number
  /** 1 where retry.on lists the Failure at that index */
  readonly #failures = new Uint8Array(5)
  /** 1 where retry.on lists the status FIRST_STATUS + index */
  readonly #statuses = new Uint8Array(STATUS_SPAN)

  constructor(cfg: RetryConfig | undefined) {
    this.attempts = cfg === undefined ? 0 : cfg.attempts
    this.minMs = cfg === undefined ? 0 : cfg.backoff.min
    this.maxMs = cfg === undefined ? 0 : cfg.backoff.max
    this.budget = cfg?.budget ?? 20
    this.minRetries = cfg?.min_retries ?? 3
    this.#base = this.minMs > 0 ? this.minMs : this.maxMs / 16
    for (const c of cfg === undefined ? DEFAULT_ON : cfg.on) {
      if (c === 'connect') this.#failures[Failure.CONNECT] = 1
      else if (c === 'timeout') this.#failures[Failure.TIMEOUT] = 1
      else if (c === 'reset') this.#failures[Failure.RESET] = 1
      else if (c >= FIRST_STATUS && c < FIRST_STATUS + STATUS_SPAN) this.#statuses[c - FIRST_STATUS] = 1
    }
  }

  /** retry.on lists this response status. */
  onStatus(status: number): boolean {
    const i = status - FIRST_STATUS
    return i >= 0 && i < STATUS_SPAN && this.#statuses[i] === 1
  }

  /** retry.on lists this failure kind (an invalid response never is: resending the same request gets the same). */
  onFailure(f: Failure): boolean {
    return this.#failures[f] === 1
  }

  /**
   * Wait before retry number `n` (1 = the first retry), in ms: exponential backoff with full jitter, a uniform draw
   * between MIN and a ceiling that doubles with each retry, min(MAX, base · 2ⁿ). Full jitter spreads the retries of
   * many clients that failed together (a provider hiccup) instead of sending them back in one wave.
   */
  backoff(n: number, random: number = Math.random()): number {
    const ceiling = Math.min(this.maxMs, this.#base * 2 ** n)
    const lo = Math.min(this.minMs, ceiling)
    return lo + random * (ceiling - lo)
  }
}

/**
 * The retry condition of a failed attempt, from the error code the stream stage chose for it. A connect timeout is
 * a connect failure (as Envoy's connect-failure): the request never reached the upstream, unlike a first-byte
 * timeout, where it may be running there.
 */
export function failureOf(code: ErrorCode, undiciCode: string | undefined): Failure {
  switch (code) {
    case 'LEAKY_UPSTREAM_CONNECT':
    // the request never reached the upstream; another target or the fallback may have a certificate that verifies
    case 'LEAKY_UPSTREAM_TLS':
      return Failure.CONNECT
    case 'LEAKY_UPSTREAM_TIMEOUT':
      return undiciCode === 'UND_ERR_CONNECT_TIMEOUT' ? Failure.CONNECT : Failure.TIMEOUT
    case 'LEAKY_UPSTREAM_RESET':
      return Failure.RESET
    default:
      return Failure.INVALID
  }
}
