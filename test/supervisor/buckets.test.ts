// Bucket hand-over between generations with real bucket tables: restore of a hand-over snapshot, the final delta an
// old generation sends after it drained (merged exactly for buckets that stayed non-empty, conservatively for one
// that was empty at hand-over), downtime draining buckets, and a bad final snapshot refused without damage.
import t from 'tap'
import { compileLimit } from '../../src/limiter/limit.js'
import { BucketTable, Status } from '../../src/limiter/table.js'
import { measureAnchorNs } from '../../src/limiter/clock.js'
import { fresher, mergeDelta, restoreSnapshot, takeSnapshot } from '../../src/supervisor/buckets.js'

const daily = compileLimit({ name: 'org-daily', per: 'org', unit: 'tokens', amount: 5e6, period_ms: 86_400_000, burst: 5e6 })
const rps = compileLimit({ name: 'key-rps', per: 'key', unit: 'requests', amount: 10, period_ms: 1000, burst: 10 })

/** Units held by a bucket now (afterNs / T). */
function level(table: BucketTable, l: typeof daily, scope: string): number {
  t.equal(table.peek(l, scope, table.clock.now()), Status.OK)
  return table.afterNs / Number(l.t)
}

function charge(table: BucketTable, l: typeof daily, scope: string, n: number): void {
  t.equal(table.charge(l, scope, n, table.clock.now()), Status.OK, `charge ${l.name}/${scope} ${n}`)
}

t.test('hand-over: the new generation starts at the old one\'s levels, then adds the old one\'s final delta', async (t) => {
  const g = BucketTable.create(4096)
  charge(g, daily, 'org-a', 1000)
  charge(g, rps, 'k1', 3)
  const base = takeSnapshot(g)

  const next = BucketTable.create(4096)
  const r = restoreSnapshot(next, base)
  t.ok(r.ok)
  t.ok(Math.abs(level(next, daily, 'org-a') - 1000) < 1, 'restored level')

  // the overlap: both serve; the old one finishes its requests and charges their usage
  charge(g, daily, 'org-a', 500)
  charge(g, daily, 'org-b', 200)
  charge(next, daily, 'org-a', 300)
  const final = takeSnapshot(g)

  const m = mergeDelta(next, base, final)
  t.same(m, { ok: true, merged: 2 }, 'org-a and org-b changed in the old generation; k1 did not')
  const a = level(next, daily, 'org-a')
  t.ok(Math.abs(a - 1800) < 1, `org-a holds both generations' charges: 1000 + 500 + 300 (got ${a})`)
  const b = level(next, daily, 'org-b')
  t.ok(Math.abs(b - 200) < 1, `org-b, empty at hand-over, holds what was charged there (got ${b})`)
  const k = level(next, rps, 'k1')
  t.ok(k > 0 && k <= 3, `k1 was not charged again: not doubled (got ${k})`)
})

t.test('downtime drains the buckets: a snapshot restored an hour later has lost an hour\'s worth', async (t) => {
  const g = BucketTable.create(1024)
  charge(g, daily, 'org-a', 1_000_000)
  charge(g, rps, 'k1', 10)
  const snap = takeSnapshot(g)
  const later = BucketTable.create(1024, 'deny_new', { anchorNs: measureAnchorNs() + 3600n * 1_000_000_000n })
  const r = restoreSnapshot(later, snap)
  t.ok(r.ok)
  if (r.ok) t.equal(r.dropped, 1, 'the per-second bucket drained long ago: dropped')
  const a = level(later, daily, 'org-a')
  const drained = 5e6 / 24
  t.ok(Math.abs(a - (1_000_000 - drained)) < 5, `daily level minus one hour of drain (got ${a}, want ~${1_000_000 - drained})`)
})

t.test('a damaged final snapshot is refused and changes nothing', async (t) => {
  const g = BucketTable.create(1024)
  charge(g, daily, 'org-a', 1000)
  const base = takeSnapshot(g)
  const final = takeSnapshot(g)
  const bad = { ...final, bytes: final.bytes.slice(0, final.bytes.length - 3) }
  const next = BucketTable.create(1024)
  restoreSnapshot(next, base)
  const before = level(next, daily, 'org-a')
  t.same(mergeDelta(next, base, bad), { ok: false, error: 'SNAPSHOT_TRUNCATED' })
  t.ok(Math.abs(level(next, daily, 'org-a') - before) < 1)
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
