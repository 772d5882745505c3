// Unit parsers for the values a user writes in the config: durations, sizes, counts, rates and backoff ranges.
// They return a result instead of throwing so the schema can turn a bad value into one issue with a position,
// and each error names the units it accepts: "30" alone never guesses between seconds and milliseconds.

export type UnitResult<T> = { ok: true; value: T } | { ok: false; message: string }

export interface Rate {
  amount: number
  period_ms: number
}

export interface Backoff {
  min: number
  max: number
}

const SECOND = 1000
const DAY = 86_400_000

const DURATION_MS: Record<string, number> = { ms: 1, s: SECOND, m: 60 * SECOND, h: 3_600_000, d: DAY }
// binary multiples: memory and body limits are thought of in KiB/MiB
const SIZE_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }
// decimal multiples: "64k" requests or table slots are counted, not addressed
const COUNT_MULT: Record<string, number> = { '': 1, k: 1e3, K: 1e3, M: 1e6 }
// a month is 30 days so a monthly budget drains at a constant, predictable rate
const RATE_PERIOD_MS: Record<string, number> = { s: SECOND, sec: SECOND, min: 60 * SECOND, hour: 3_600_000, day: DAY, month: 30 * DAY }

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)$/i
const COUNT_RE = /^(\d+(?:\.\d+)?)\s*(k|K|M)?$/
const RATE_RE = /^(\d+(?:\.\d+)?)\s*(k|K|M)?\s*\/\s*(s|sec|min|hour|day|month)$/

const DURATION_HINT = 'a duration with a unit: ms, s, m, h or d (e.g. "250ms", "30s", "5m")'
const SIZE_HINT = 'a size with a unit: b, kb, mb or gb (e.g. "64kb", "10mb"; k = 1024)'
const COUNT_HINT = 'a whole number, optionally with k or M (e.g. 500, "64k", "1M"; k = 1000)'
const RATE_HINT = 'a rate "AMOUNT/UNIT" with UNIT one of s, sec, min, hour, day, month (e.g. "20/s", "100k/min", "5M/day")'

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v)
}

function fail<T>(hint: string, v: unknown): UnitResult<T> {
  if (typeof v === 'number') return { ok: false, message: `expected ${hint}; a bare number has no unit, got ${v}` }
  return { ok: false, message: `expected ${hint}, got ${show(v)}` }
}

/** "250ms" "30s" "5m" "1h" "1d" → milliseconds (integer). */
export function parseDuration(v: unknown): UnitResult<number> {
  const m = typeof v === 'string' ? DURATION_RE.exec(v.trim()) : null
  if (m === null) return fail(DURATION_HINT, v)
  return { ok: true, value: Math.round(Number(m[1]) * DURATION_MS[m[2]]) }
}

/** "512b" "64kb" "10mb" "1gb" → bytes (integer, k = 1024). */
export function parseSize(v: unknown): UnitResult<number> {
  const m = typeof v === 'string' ? SIZE_RE.exec(v.trim()) : null
  if (m === null) return fail(SIZE_HINT, v)
  return { ok: true, value: Math.round(Number(m[1]) * SIZE_BYTES[m[2].toLowerCase()]) }
}

/** 500, "64k", "1M" → integer (k = 1000). A plain YAML integer is a count too: counts have no unit. */
export function parseCount(v: unknown): UnitResult<number> {
  let n: number
  if (typeof v === 'number') {
    n = v
  } else {
    const m = typeof v === 'string' ? COUNT_RE.exec(v.trim()) : null
    if (m === null) return { ok: false, message: `expected ${COUNT_HINT}, got ${show(v)}` }
    n = Number(m[1]) * COUNT_MULT[m[2] ?? '']
  }
  // 1.5k is 1500, but 1.2345k is not a whole number of anything
  const rounded = Math.round(n)
  if (!Number.isFinite(n) || Math.abs(n - rounded) > 1e-9 * Math.max(1, n) || rounded < 0) {
    return { ok: false, message: `expected ${COUNT_HINT}, got ${show(v)}` }
  }
  return { ok: true, value: rounded }
}

/** "20/s" "100k/min" "5M/day" "1M/month" → { amount, period_ms }. */
export function parseRate(v: unknown): UnitResult<Rate> {
  const m = typeof v === 'string' ? RATE_RE.exec(v.trim()) : null
  if (m === null) return fail(RATE_HINT, v)
  const amount = Number(m[1]) * COUNT_MULT[m[2] ?? '']
  if (!(amount > 0)) return { ok: false, message: `a rate must be greater than zero, got ${show(v)}` }
  return { ok: true, value: { amount, period_ms: RATE_PERIOD_MS[m[3]] } }
}

/** "50ms..2s" → { min, max } in milliseconds. */
export function parseBackoff(v: unknown): UnitResult<Backoff> {
  const parts = typeof v === 'string' ? v.split('..') : []
  if (parts.length !== 2) return { ok: false, message: `expected a backoff range "MIN..MAX" of durations (e.g. "50ms..2s"), got ${show(v)}` }
  const min = parseDuration(parts[0])
  if (!min.ok) return min
  const max = parseDuration(parts[1])
  if (!max.ok) return max
  if (min.value > max.value) return { ok: false, message: `backoff minimum ${parts[0].trim()} is above its maximum ${parts[1].trim()}` }
  return { ok: true, value: { min: min.value, max: max.value } }
}
