// Calendar windows: the hour, day, ISO week (Monday first) or calendar month that contains an instant, in an IANA
// time zone, as the finance team means them — a day in Europe/Berlin starts at local midnight, lasts 23 or 25 hours
// across DST changes, and a month runs from the 1st to the 1st (Jan 31 → Feb 1 → Mar 1). Intl is the only zone
// database used (Node's ICU), so no tz data ships with the proxy.
//
// Hot path: a limit asks endNs(now) per charge. The window [start, end) is cached, so a charge costs two bigint
// compares; Intl runs once per window rollover (per thread).
import { LeakyError } from '../errors.js'

export const CALENDAR_UNITS = ['hour', 'day', 'week', 'month'] as const
export type CalendarUnit = (typeof CALENDAR_UNITS)[number]

const HOUR = 3_600_000
const DAY = 24 * HOUR

/**
 * The shortest length a window of the unit can have, in ms: a bucket charged in one window is empty by the next
 * window's end if its whole budget fits in half of this (limit.ts picks T that way). Half-hour DST shifts (Lord
 * Howe) make the shortest "hour" 30 minutes; a day loses at most an hour.
 */
export const MIN_WINDOW_MS: Record<CalendarUnit, number> = {
  hour: HOUR / 2,
  day: DAY - HOUR,
  week: 7 * DAY - HOUR,
  month: 28 * DAY - HOUR,
}

/** True when Intl knows the zone (IANA names such as "Europe/Berlin", or "UTC"). */
export function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
    return true
  } catch {
    return false
  }
}

interface Wall {
  y: number
  mo: number // 1..12
  d: number
  h: number
  mi: number
  s: number
  wd: number // 1 = Monday .. 7 = Sunday
}

const WEEKDAY: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 }

export class CalendarWindow {
  readonly unit: CalendarUnit
  readonly timeZone: string
  readonly minWindowMs: number
  readonly #fmt: Intl.DateTimeFormat
  #startNs = 1n
  #endNs = 0n

  constructor(unit: CalendarUnit, timeZone: string) {
    if (!validTimeZone(timeZone)) throw new LeakyError('LEAKY_CONFIG_INVALID', `unknown time zone "${timeZone}"`)
    this.unit = unit
    this.timeZone = timeZone
    this.minWindowMs = MIN_WINDOW_MS[unit]
    this.#fmt = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric',
      second: 'numeric', weekday: 'short',
    })
  }

  /** ns since the epoch at which the window holding `nowNs` ends (= the next window's start). */
  endNs(nowNs: bigint): bigint {
    if (nowNs >= this.#endNs || nowNs < this.#startNs) this.#move(nowNs)
    return this.#endNs
  }

  /** ns since the epoch at which the window holding `nowNs` started. */
  startNs(nowNs: bigint): bigint {
    if (nowNs >= this.#endNs || nowNs < this.#startNs) this.#move(nowNs)
    return this.#startNs
  }

  #move(nowNs: bigint): void {
    const ms = Number(nowNs / 1_000_000n)
    const b = this.bounds(ms)
    this.#startNs = BigInt(b.start) * 1_000_000n
    this.#endNs = BigInt(b.end) * 1_000_000n
  }

  /** The window holding the instant `ms` (epoch ms): [start, end) in epoch ms. */
  bounds(ms: number): { start: number; end: number } {
    const w = this.#wall(ms)
    switch (this.unit) {
      case 'hour': {
        // the wall clock's hour began minutes:seconds ago; zone offsets are whole quarter hours, so this is exact and
        // needs no local-to-UTC mapping (which is ambiguous in the repeated hour of a DST fall-back)
        const start = ms - (w.mi * 60 + w.s) * 1000 - (((ms % 1000) + 1000) % 1000)
        const next = start + HOUR
        // a half-hour DST shift inside the hour (Lord Howe): the window ends where the wall clock next shows :00
        const nw = this.#wall(next)
        return { start, end: next - (nw.mi * 60 + nw.s) * 1000 }
      }
      case 'day':
        return { start: this.#local(w.y, w.mo, w.d), end: this.#local(w.y, w.mo, w.d + 1) }
      case 'week': {
        const d = w.d - (w.wd - 1)
        return { start: this.#local(w.y, w.mo, d), end: this.#local(w.y, w.mo, d + 7) }
      }
      case 'month':
        return { start: this.#local(w.y, w.mo, 1), end: this.#local(w.y, w.mo + 1, 1) }
    }
  }

  #wall(ms: number): Wall {
    const w: Wall = { y: 0, mo: 0, d: 0, h: 0, mi: 0, s: 0, wd: 0 }
    for (const p of this.#fmt.formatToParts(ms)) {
      switch (p.type) {
        case 'year': w.y = Number(p.value); break
        case 'month': w.mo = Number(p.value); break
        case 'day': w.d = Number(p.value); break
        case 'hour': w.h = Number(p.value); break
        case 'minute': w.mi = Number(p.value); break
        case 'second': w.s = Number(p.value); break
        case 'weekday': w.wd = WEEKDAY[p.value] ?? 0; break
      }
    }
    return w
  }

  // offset of the zone at instant ms: local wall time read as UTC, minus the instant
  #offset(ms: number): number {
    const w = this.#wall(ms)
    return Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s) - (ms - (((ms % 1000) + 1000) % 1000))
  }

  /**
   * The instant local midnight starts on (y, mo, d) — day and month may overflow (Date.UTC normalises them). Where
   * midnight does not exist (a DST jump at 00:00, e.g. America/Santiago), the first instant of that day.
   */
  #local(y: number, mo: number, d: number): number {
    const guess = Date.UTC(y, mo - 1, d)
    let t = guess - this.#offset(guess)
    const o2 = this.#offset(t)
    if (guess - o2 !== t) {
      const t2 = guess - o2
      // both candidates map back to midnight in the overlap case: take the earlier; in a gap neither does: take the
      // instant the day's wall clock starts (the later candidate)
      t = this.#isMidnight(t2) ? Math.min(t, t2) : Math.max(t, t2)
    }
    return t
  }

  #isMidnight(ms: number): boolean {
    const w = this.#wall(ms)
    return w.h === 0 && w.mi === 0 && w.s === 0
  }
}
