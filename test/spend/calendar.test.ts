// Calendar windows in IANA zones: DST days of 23 and 25 hours, month ends (Jan 31 → Feb, leap Feb), ISO weeks,
// a zone whose midnight does not exist on its DST day, half-hour zones and the cache of the current window.
import t from 'tap'
import { CalendarWindow, MIN_WINDOW_MS, validTimeZone } from '../../src/spend/calendar.js'

const iso = (ms: number) => new Date(ms).toISOString()
const at = (s: string) => Date.parse(s)

t.test('day in Europe/Berlin across DST: 23 h in spring, 25 h in autumn, starts at local midnight', async (t) => {
  const w = new CalendarWindow('day', 'Europe/Berlin')
  const spring = w.bounds(at('2026-03-29T12:00:00Z'))
  t.equal(iso(spring.start), '2026-03-28T23:00:00.000Z', 'midnight CET')
  t.equal(iso(spring.end), '2026-03-29T22:00:00.000Z', 'next midnight CEST')
  t.equal(spring.end - spring.start, 23 * 3_600_000)
  const autumn = w.bounds(at('2026-10-25T12:00:00Z'))
  t.equal(iso(autumn.start), '2026-10-24T22:00:00.000Z')
  t.equal(iso(autumn.end), '2026-10-25T23:00:00.000Z')
  t.equal(autumn.end - autumn.start, 25 * 3_600_000)
  // the last ms of a day belongs to it, the next ms to the next day
  t.equal(w.bounds(spring.end - 1).start, spring.start)
  t.equal(w.bounds(spring.end).start, spring.end)
})

t.test('day in America/New_York: the repeated hour of fall-back stays in the same day', async (t) => {
  const w = new CalendarWindow('day', 'America/New_York')
  const b = w.bounds(at('2026-11-01T06:30:00Z')) // 01:30 EST, the second 01:30 of the night
  t.equal(iso(b.start), '2026-11-01T04:00:00.000Z')
  t.equal(iso(b.end), '2026-11-02T05:00:00.000Z')
  t.equal(b.end - b.start, 25 * 3_600_000)
})

t.test('month: Jan 31 → Feb 1 → Mar 1, leap February, in a zone and in UTC', async (t) => {
  const w = new CalendarWindow('month', 'Europe/Berlin')
  const jan = w.bounds(at('2026-01-31T22:59:59.999Z')) // 23:59:59.999 Jan 31 Berlin
  t.equal(iso(jan.start), '2025-12-31T23:00:00.000Z')
  t.equal(iso(jan.end), '2026-01-31T23:00:00.000Z')
  const feb = w.bounds(at('2026-01-31T23:00:00Z')) // 00:00 Feb 1 Berlin
  t.equal(iso(feb.start), '2026-01-31T23:00:00.000Z')
  t.equal(iso(feb.end), '2026-02-28T23:00:00.000Z', '28 days in 2026')
  const march = w.bounds(at('2026-03-15T00:00:00Z'))
  t.equal(iso(march.end), '2026-03-31T22:00:00.000Z', 'April starts in CEST')
  t.equal(march.end - march.start, 31 * 86_400_000 - 3_600_000, 'March loses the DST hour')
  const leap = new CalendarWindow('month', 'UTC').bounds(at('2028-02-29T12:00:00Z'))
  t.equal(iso(leap.start), '2028-02-01T00:00:00.000Z')
  t.equal(iso(leap.end), '2028-03-01T00:00:00.000Z')
  const dec = new CalendarWindow('month', 'UTC').bounds(at('2026-12-31T23:59:59Z'))
  t.equal(iso(dec.end), '2027-01-01T00:00:00.000Z', 'December rolls into the next year')
  t.ok(feb.end - feb.start >= MIN_WINDOW_MS.month)
})

t.test('week: ISO weeks start on Monday 00:00 local, also across a month end', async (t) => {
  const w = new CalendarWindow('week', 'Europe/Berlin')
  const b = w.bounds(at('2026-04-01T10:00:00Z')) // a Wednesday
  t.equal(iso(b.start), '2026-03-29T22:00:00.000Z', 'Monday Mar 30 00:00 CEST')
  t.equal(iso(b.end), '2026-04-05T22:00:00.000Z')
  const sunday = w.bounds(at('2026-04-05T21:59:59Z'))
  t.equal(sunday.start, b.start, 'Sunday ends the week')
  const dst = w.bounds(at('2026-03-26T10:00:00Z'))
  t.equal(dst.end - dst.start, 7 * 86_400_000 - 3_600_000, 'the DST week is an hour short')
})

t.test('hour: wall-clock hours, half-hour zones, and the repeated hour of fall-back', async (t) => {
  const india = new CalendarWindow('hour', 'Asia/Kolkata')
  const b = india.bounds(at('2026-05-01T10:45:00Z')) // 16:15 IST
  t.equal(iso(b.start), '2026-05-01T10:30:00.000Z')
  t.equal(iso(b.end), '2026-05-01T11:30:00.000Z')
  const berlin = new CalendarWindow('hour', 'Europe/Berlin')
  const first = berlin.bounds(at('2026-10-25T00:30:00Z')) // 02:30 CEST
  const second = berlin.bounds(at('2026-10-25T01:30:00Z')) // 02:30 CET, the same wall hour again
  t.equal(iso(first.start), '2026-10-25T00:00:00.000Z')
  t.equal(iso(second.start), '2026-10-25T01:00:00.000Z', 'the repeated hour is its own window')
  t.equal(first.end, second.start)
  const howe = new CalendarWindow('hour', 'Australia/Lord_Howe')
  // Lord Howe moves its clocks by 30 minutes: 02:00 → 02:30 on the first Sunday of October
  const jump = howe.bounds(at('2026-10-03T15:10:00Z')) // 01:40 LHST (+10:30)
  t.ok(jump.end - jump.start <= 3_600_000 && jump.end - jump.start >= MIN_WINDOW_MS.hour)
})

t.test('a zone whose midnight is skipped: the day starts at its first instant', async (t) => {
  // America/Santiago springs forward at 24:00 on the first Saturday of September: Sep 6 2026 starts at 01:00
  const w = new CalendarWindow('day', 'America/Santiago')
  const b = w.bounds(at('2026-09-06T12:00:00Z'))
  t.equal(iso(b.start), '2026-09-06T04:00:00.000Z', '01:00 -03 is the first instant of the day')
  t.equal(b.end - b.start, 23 * 3_600_000)
})

t.test('endNs caches the window and moves on rollover (and back, for a clock set back)', async (t) => {
  const w = new CalendarWindow('day', 'UTC')
  const d1 = BigInt(at('2026-01-31T10:00:00Z')) * 1_000_000n
  t.equal(w.endNs(d1), BigInt(at('2026-02-01T00:00:00Z')) * 1_000_000n)
  t.equal(w.startNs(d1), BigInt(at('2026-01-31T00:00:00Z')) * 1_000_000n)
  const d2 = BigInt(at('2026-02-01T00:00:00Z')) * 1_000_000n
  t.equal(w.endNs(d2), BigInt(at('2026-02-02T00:00:00Z')) * 1_000_000n)
  t.equal(w.endNs(d1), BigInt(at('2026-02-01T00:00:00Z')) * 1_000_000n)
})

t.test('time zones: IANA names are known, anything else is not', async (t) => {
  t.ok(validTimeZone('Europe/Berlin'))
  t.ok(validTimeZone('UTC'))
  t.notOk(validTimeZone('Europe/Berlinn'))
  t.notOk(validTimeZone('Mars/Olympus'))
  t.throws(() => new CalendarWindow('day', 'Mars/Olympus'), /unknown time zone "Mars\/Olympus"/)
})
