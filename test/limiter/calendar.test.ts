// Calendar windows on the bucket table: the whole amount per window, nothing drains inside it, empty at the next
// window's start (also after usage reconciled past the amount), exact admission in whole units, a calendar bucket
// never taken over by a real-time charger inside its window and never taking a live real-time bucket, and kept by a
// snapshot/restore. Times are passed explicitly (the table's clock is not read).
import t from 'tap'
import { compileLimit, type LimitDef } from '../../src/limiter/limit.js'
import { Charges, chargeAll } from '../../src/limiter/policy.js'
import { BucketTable, Status } from '../../src/limiter/table.js'

const ms = (iso: string) => BigInt(Date.parse(iso)) * 1_000_000n
const daily: LimitDef = { name: 'daily', per: 'key', unit: 'tokens', amount: 1000, period_ms: 86_400_000, burst: 1000, calendar: { unit: 'day', timezone: 'Europe/Berlin' } }
const day = compileLimit(daily)

t.test('the whole amount per window, no drain inside it, reset at local midnight', async (t) => {
  const table = BucketTable.create(1024)
  const morning = ms('2026-03-29T06:00:00Z') // the 23-hour DST day in Berlin
  t.equal(table.charge(day, 'k', 600, morning), Status.OK)
  t.equal(table.charge(day, 'k', 400, ms('2026-03-29T21:59:59.999Z')), Status.OK, 'exactly the amount, at the last ms')
  t.equal(table.charge(day, 'k', 1, ms('2026-03-29T21:59:59.999Z')), Status.DENIED, 'nothing drained in 16 hours')
  t.equal(table.charge(day, 'k', 1000, ms('2026-03-29T22:00:00Z')), Status.OK, 'midnight CEST: a new window, full amount')
  t.equal(table.charge(day, 'k', 1, ms('2026-03-29T22:00:00Z')), Status.DENIED)
})

t.test('usage reconciled past the amount does not leak into the next window', async (t) => {
  const table = BucketTable.create(1024)
  const noon = ms('2026-06-01T10:00:00Z')
  t.equal(table.charge(day, 'k', 1000, noon), Status.OK)
  t.equal(table.adjust(day, 'k', 900, noon), Status.OK, 'the request used more than its estimate: debt within the window')
  t.equal(table.afterNs / day.tNs, 1900, 'level 1900 of 1000')
  t.equal(table.peek(day, 'k', ms('2026-06-01T22:00:00Z')), Status.OK)
  t.equal(table.afterNs, 0, 'empty at the next window')
  t.equal(table.charge(day, 'k', 1000, ms('2026-06-01T22:00:00Z')), Status.OK)
})

t.test('a refund never goes below empty; policy reports level and the wait until the window ends', async (t) => {
  const table = BucketTable.create(1024)
  const now = ms('2026-06-01T10:00:00Z')
  t.equal(table.charge(day, 'k', 300, now), Status.OK)
  t.equal(table.adjust(day, 'k', -500, now), Status.OK)
  t.equal(table.afterNs, 0)
  const req = new Charges()
  req.add(day, 'k', 1001)
  t.equal(chargeAll(table, req, now), Status.OVER_BURST)
  req.clear()
  t.equal(table.charge(day, 'k', 999, now), Status.OK)
  req.add(day, 'k', 2)
  t.equal(chargeAll(table, req, now), Status.DENIED)
  t.equal(req.retryNs, Number(ms('2026-06-01T22:00:00Z') - now), 'Retry-After: until midnight in Berlin')
  t.equal(Math.round(req.afterNs(0) / day.tNs), 999, 'the level as it stands')
  t.equal(req.resetNs(0), Number(ms('2026-06-01T22:00:00Z') - now))
})

t.test('real-time and calendar buckets share slots safely', async (t) => {
  // every key in one probe window, capacity 2: a calendar bucket and a real-time bucket compete for the slots
  const table = BucketTable.create(2, 'deny_new', { hash: () => 0 })
  const rps = compileLimit({ name: 'rps', per: 'key', unit: 'requests', amount: 1, period_ms: 1000, burst: 1 })
  const now = ms('2026-06-01T10:00:00Z')
  t.equal(table.charge(day, 'k', 10, now), Status.OK)
  t.equal(table.charge(rps, 'a', 1, now), Status.OK)
  // one second later the rps bucket has drained; the calendar bucket has not (its TAT is past its window's end)
  t.equal(table.charge(rps, 'b', 1, now + 1_000_000_000n), Status.OK, 'b reclaims a\'s drained slot')
  t.equal(table.peek(day, 'k', now + 1_000_000_000n), Status.OK)
  t.equal(Math.round(table.afterNs / day.tNs), 10, 'the calendar bucket kept its level')
  // a calendar charge of a new subject runs slot search on real time: the live rps bucket is not taken
  t.equal(table.charge(day, 'other', 1, now + 1_000_000_000n), Status.FULL)
  t.equal(table.charge(rps, 'b', 1, now + 1_000_000_000n), Status.DENIED, 'b is still there, still full')
})

t.test('snapshot and restore keep a calendar window\'s level', async (t) => {
  const a = BucketTable.create(1024)
  const now = ms('2026-06-01T10:00:00Z')
  t.equal(a.charge(day, 'k', 700, now), Status.OK)
  const b = BucketTable.create(1024)
  const r = b.restore(a.snapshot(now + 3_600_000_000_000n), now + 3_600_000_000_000n)
  t.same(r, { ok: true, restored: 1, dropped: 0, full: 0 })
  t.equal(b.charge(day, 'k', 300, now + 7_200_000_000_000n), Status.OK)
  t.equal(b.charge(day, 'k', 1, now + 7_200_000_000_000n), Status.DENIED, 'two hours later: still 700 spent')
})
