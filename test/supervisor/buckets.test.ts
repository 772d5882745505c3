// Bucket hand-over between generations with real bucket tables: restore of a hand-over snapshot, the deltas an old
// generation sends while it drains (merged exactly for buckets that stayed non-empty, conservatively for one that
// was empty at hand-over; several in a row add up), downtime draining buckets, and a bad snapshot refused without
// damage.
import t from 'tap'
import { compileLimit } from '../../src/limiter/limit.js'
import { BucketTable, Status } from '../../src/limiter/table.js'
import { measureAnchorNs } from '../../src/limiter/clock.js'
import { fresher, mergeDelta, restoreSnapshot, sameBuckets, takeSnapshot } from '../../src/supervisor/buckets.js'

// a monthly budget drains ~2 tokens/s: the levels below hold within a token even on a slow, busy machine
const monthly = compileLimit({ name: 'org-monthly', per: 'org', unit: 'tokens', amount: 5e6, period_ms: 30 * 86_400_000, burst: 5e6 })
const rps = compileLimit({ name: 'key-rps', per: 'key', unit: 'requests', amount: 10, period_ms: 1000, burst: 10 })

/** Units held by a bucket now (afterNs / T). */
function level(table: BucketTable, l: typeof monthly, scope: string): number {
  t.equal(table.peek(l, scope, table.clock.now()), Status.OK)
  return table.afterNs / Number(l.t)
}

function charge(table: BucketTable, l: typeof monthly, scope: string, n: number): void {
  t.equal(table.charge(l, scope, n, table.clock.now()), Status.OK, `charge ${l.name}/${scope} ${n}`)
}

t.test('hand-over: the new generation starts at the old one\'s levels, then adds the old one\'s final delta', async (t) => {
  const g = BucketTable.create(4096)
  charge(g, monthly, 'org-a', 1000)
  charge(g, rps, 'k1', 3)
  const base = takeSnapshot(g)

  const next = BucketTable.create(4096)
  const r = restoreSnapshot(next, base)
  t.ok(r.ok)
  t.ok(Math.abs(level(next, monthly, 'org-a') - 1000) < 1, 'restored level')

  // the overlap: both serve; the old one finishes its requests and charges their usage
  charge(g, monthly, 'org-a', 500)
  charge(g, monthly, 'org-b', 200)
  charge(next, monthly, 'org-a', 300)
  const final = takeSnapshot(g)

  const m = mergeDelta(next, base, final)
  t.same(m, { ok: true, merged: 2 }, 'org-a and org-b changed in the old generation; k1 did not')
  const a = level(next, monthly, 'org-a')
  t.ok(Math.abs(a - 1800) < 1, `org-a holds both generations' charges: 1000 + 500 + 300 (got ${a})`)
  const b = level(next, monthly, 'org-b')
  t.ok(Math.abs(b - 200) < 1, `org-b, empty at hand-over, holds what was charged there (got ${b})`)
  const k = level(next, rps, 'k1')
  t.ok(k > 0 && k <= 3, `k1 was not charged again: not doubled (got ${k})`)
})

t.test('deltas in a row, as a draining generation sends them, add up to what it charged', async (t) => {
  const g = BucketTable.create(1024)
  charge(g, monthly, 'org-a', 1000)
  let prev = takeSnapshot(g)
  const next = BucketTable.create(1024)
  restoreSnapshot(next, prev)
  for (const n of [100, 50, 25]) {
    charge(g, monthly, 'org-a', n)
    const now = takeSnapshot(g)
    t.same(mergeDelta(next, prev, now), { ok: true, merged: 1 })
    prev = now
  }
  const a = level(next, monthly, 'org-a')
  t.ok(Math.abs(a - 1175) < 1, `1000 + 100 + 50 + 25 (got ${a})`)
})

t.test('sameBuckets: nothing charged between two snapshots means no delta to send', async (t) => {
  const g = BucketTable.create(1024)
  charge(g, monthly, 'org-a', 1000)
  charge(g, rps, 'k1', 1)
  const a = takeSnapshot(g)
  const b = takeSnapshot(g)
  t.ok(sameBuckets(a, b), 'same levels, later header')
  charge(g, monthly, 'org-a', 1)
  t.notOk(sameBuckets(b, takeSnapshot(g)), 'one more token')
})

t.test('downtime drains the buckets: a snapshot restored an hour later has lost an hour\'s worth', async (t) => {
  const g = BucketTable.create(1024)
  charge(g, monthly, 'org-a', 1_000_000)
  charge(g, rps, 'k1', 10)
  const snap = takeSnapshot(g)
  const later = BucketTable.create(1024, 'deny_new', { anchorNs: measureAnchorNs() + 3600n * 1_000_000_000n })
  const r = restoreSnapshot(later, snap)
  t.ok(r.ok)
  if (r.ok) t.equal(r.dropped, 1, 'the per-second bucket drained long ago: dropped')
  const a = level(later, monthly, 'org-a')
  const drained = 5e6 / 30 / 24
  t.ok(Math.abs(a - (1_000_000 - drained)) < 5, `monthly level minus one hour of drain (got ${a}, want ~${1_000_000 - drained})`)
})

t.test('a damaged final snapshot is refused and changes nothing', async (t) => {
  const g = BucketTable.create(1024)
  charge(g, monthly, 'org-a', 1000)
  const base = takeSnapshot(g)
  const final = takeSnapshot(g)
  const bad = { ...final, bytes: final.bytes.slice(0, final.bytes.length - 3) }
  const next = BucketTable.create(1024)
  restoreSnapshot(next, base)
  const before = level(next, monthly, 'org-a')
  t.same(mergeDelta(next, base, bad), { ok: false, error: 'SNAPSHOT_TRUNCATED' })
  t.ok(Math.abs(level(next, monthly, 'org-a') - before) < 1)
})

t.test('fresher: the later of the master\'s copy and the state file', async (t) => {
  const a = { taken_at_ms: 1000, bytes: new Uint8Array() }
  const b = { taken_at_ms: 2000, bytes: new Uint8Array() }
  t.equal(fresher(null, null), null)
  t.equal(fresher(a, null), a)
  t.equal(fresher(null, b), b)
  t.equal(fresher(a, b), b)
  t.equal(fresher(b, a), b)
})
