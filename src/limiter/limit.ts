// A limit compiled for the hot path: T and tau in nanoseconds, the bucket-key prefix and the constant parts of the
// response headers, all computed once at config load so a charge only does the CAS math and a header only appends
// numbers. Validation throws here (config edge), never later.
import { LeakyError } from '../errors.js'
import { keyPrefixWords } from './key.js'
import { CalendarWindow, type CalendarUnit, MIN_WINDOW_MS } from '../spend/calendar.js'

export type LimitSubject = 'key' | 'org' | 'tier' | 'route' | 'upstream' | 'ip' | 'global'
/** usd: a budget (src/spend/budgets.ts), counted in units of `unitPico` pico-USD */
export type LimitUnit = 'requests' | 'tokens' | 'usd'

/** The compiled config entry (src/config), burst already defaulted. Extra fields are ignored. */
export interface LimitDef {
  name: string
  per: LimitSubject
  unit: LimitUnit
  amount: number
  period_ms: number
  burst: number
  /** a calendar window instead of a leaky bucket: the whole amount per window, reset at the window's start */
  calendar?: { unit: CalendarUnit; timezone: string }
  /** unit usd: pico-USD per unit */
  unit_pico?: number
  /** per: upstream — from_headers: the amount follows the provider's reported limit (src/traffic/calibrate.ts) */
  calibrate?: 'off' | 'from_headers'
}

/**
 * Largest tolerance accepted: 100 years. TAT = now + at most tau (or this cap for forced charges) stays below 2^63 ns
 * (year 2262) until ~2160, so the int64 bucket word never overflows.
 */
export const MAX_TAU_NS = 100n * 365n * 86_400n * 1_000_000_000n

/** Longest limit name, in UTF-8 bytes: the name is length-prefixed with one byte in the bucket key. */
export const MAX_NAME_BYTES = 255

export class CompiledLimit {
  readonly name: string
  readonly per: LimitSubject
  readonly unit: LimitUnit
  /** tier scale applied (1 unless per === 'key') */
  readonly scale: number
  /** units per period, after scale */
  readonly amount: number
  /** bucket size in units, after scale (integer >= 1) */
  readonly burst: number
  readonly periodMs: number
  /** emission interval: ns per unit (>= 1) */
  readonly t: bigint
  /** tolerance: burst * t, ns */
  readonly tau: bigint
  /** t and tau as numbers, for header arithmetic (exact below 2^53 ns = 104 days; beyond, rounding is harmless) */
  readonly tNs: number
  readonly tauNs: number
  /** bucket-key prefix: [name length][name UTF-8] padded to whole words; the scope value follows it (key.ts) */
  readonly keyPrefix: Int32Array
  /** `"name";q=AMOUNT;w=SECONDS` — the RateLimit-Policy item */
  readonly policyItem: string
  /** `"name";r=` — the RateLimit item up to its numbers */
  readonly stateItem: string
  /** amount as the x-ratelimit-limit-* value */
  readonly limitValue: string
  /**
   * A calendar window (null: a leaky bucket). Its bucket is charged at a virtual `now` = the window's end (table.ts),
   * so nothing drains inside the window; T is chosen so the whole amount fits in half the shortest window, hence a
   * bucket charged in one window — even one over its amount by a whole amount of reconciled usage — is empty at the
   * next window's end. Admission is exact: level + cost <= burst in whole units, whatever T is.
   */
  readonly calendar: CalendarWindow | null
  /** unit usd: pico-USD per unit (0 otherwise) */
  readonly unitPico: number
  /** the amount follows the upstream provider's reported limit (src/traffic/calibrate.ts) */
  readonly calibrate: boolean

  constructor(def: LimitDef, scale: number) {
    this.name = def.name
    this.calibrate = def.calibrate === 'from_headers' && def.per === 'upstream'
    this.per = def.per
    this.unit = def.unit
    this.scale = def.per === 'key' ? scale : 1
    this.periodMs = def.period_ms
    this.amount = def.amount * this.scale
    this.calendar = def.calendar === undefined ? null : new CalendarWindow(def.calendar.unit, def.calendar.timezone)
    this.unitPico = def.unit_pico ?? 0
    this.burst = this.calendar !== null ? Math.max(1, Math.round(this.amount)) : Math.max(1, Math.round(def.burst * this.scale))
    // T rounded to the nearest ns: the rate error is at most 0.5 ns / T (0.05% at 1M units/s).
    this.t = this.calendar !== null
      ? BigInt(Math.max(1, Math.floor((this.calendar.minWindowMs * 1e6) / (2 * this.burst))))
      : BigInt(Math.max(1, Math.round((def.period_ms * 1e6) / this.amount)))
    this.tau = BigInt(this.burst) * this.t
    this.tNs = Number(this.t)
    this.tauNs = Number(this.tau)
    this.keyPrefix = keyPrefixWords(Buffer.from(def.name, 'utf8'))
    const q = window(def.period_ms, this.amount)
    const label = sfString(def.name)
    this.policyItem = `${label};q=${q.amount};w=${q.seconds}`
    this.stateItem = `${label};r=`
    this.limitValue = String(Math.round(this.amount))
  }
}

/**
 * Compile a limit for the hot path. `scale` is the key's tier scale: it multiplies amount and burst of per-key limits
 * and is ignored for every other subject (the tier belongs to the key). Compile one CompiledLimit per tier: they share
 * the bucket (same name + scope value), only T and tau differ. Throws LeakyError LEAKY_CONFIG_INVALID.
 */
export function compileLimit(def: LimitDef, scale = 1): CompiledLimit {
  const bad = (why: string) => new LeakyError('LEAKY_CONFIG_INVALID', `limit "${def.name}": ${why}`)
  if (!(def.amount > 0) || !Number.isFinite(def.amount)) throw bad(`amount must be > 0, got ${def.amount}`)
  if (!(def.period_ms >= 1) || !Number.isFinite(def.period_ms)) throw bad(`period must be >= 1ms, got ${def.period_ms}ms`)
  if (!(def.burst >= 1) || !Number.isFinite(def.burst)) throw bad(`burst must be >= 1, got ${def.burst}`)
  if (!(scale > 0) || !Number.isFinite(scale)) throw bad(`tier scale must be > 0, got ${scale}`)
  if (Buffer.byteLength(def.name, 'utf8') > MAX_NAME_BYTES) throw bad(`name longer than ${MAX_NAME_BYTES} bytes`)
  const s = def.per === 'key' ? scale : 1
  if (def.calendar !== undefined) {
    if ((MIN_WINDOW_MS[def.calendar.unit] * 1e6) / (2 * def.amount * s) < 1) throw bad(`amount too large for a calendar ${def.calendar.unit}`)
  } else if ((def.period_ms * 1e6) / (def.amount * s) < 0.5) throw bad('rate above 1e9 units/s (less than 1 ns per unit)')
  const l = new CompiledLimit(def, scale)
  if (l.tau > MAX_TAU_NS) throw bad('burst * period / amount exceeds 100 years')
  return l
}

// RateLimit-Policy wants integer q and w: a period that is not whole seconds is restated per second (5/500ms → 10/1s).
function window(periodMs: number, amount: number): { amount: number; seconds: number } {
  if (periodMs % 1000 === 0) return { amount: Math.round(amount), seconds: periodMs / 1000 }
  return { amount: Math.round((amount * 1000) / periodMs), seconds: 1 }
}

// Structured-field sf-string: printable ASCII, with '"' and '\' escaped.
function sfString(s: string): string {
  return `"${s.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '\\$&')}"`
}
