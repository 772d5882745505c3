import t from 'tap'
import { compileLimit, type LimitDef } from '../../src/limiter/limit.js'
import { BucketTable, PROBE, Status } from '../../src/limiter/table.js'
import { LeakyError } from '../../src/errors.js'

const S = 1_000_000_000n
const NOW = 1_780_000_000n * S
const rps10: LimitDef = { name: 'rps', per: 'key', unit: 'requests', amount: 10, period_ms: 1000, burst: 5 } // T = 100 ms
const rps = compileLimit(rps10)

function fill(table: BucketTable, limit = rps, scope = 'k', now = NOW): number {
  let n = 0
  while (table.charge(limit, scope, 1, now) === Status.OK) n++
  return n
}

t.test('charge: a burst, then DENIED with the exact retry-after; buckets per (limit, scope)', async (t) => {
  const table = BucketTable.create(1024)
  t.equal(fill(table), 5, 'burst of 5 admitted at one instant')
  t.equal(table.charge(rps, 'k', 1, NOW), Status.DENIED)
  t.equal(table.retryNs, 100_000_000, 'one T until the next unit')
  t.equal(table.afterNs, 500_000_000, 'bucket drains in burst * T')
  t.equal(table.charge(rps, 'k', 1, NOW + 100_000_000n), Status.OK, 'conforms exactly at retry-after')
  t.equal(table.charge(rps, 'k', 1, NOW + 100_000_000n), Status.DENIED)
  t.equal(fill(table, rps, 'other'), 5, 'another scope value has its own bucket')
  const same = compileLimit({ ...rps10, name: 'rps2' })
  t.equal(fill(table, same, 'k'), 5, 'another limit name with the same scope has its own bucket')
  t.equal(table.stats().inserted, 3)
})

t.test('OVER_BURST: a cost above the burst never conforms and charges nothing', async (t) => {
  const table = BucketTable.create(1024)
  t.equal(table.charge(rps, 'k', 6, NOW), Status.OVER_BURST)
  t.equal(table.retryNs, -1)
  t.equal(table.stats().inserted, 0, 'nothing inserted')
  t.equal(fill(table), 5)
})

t.test('refunds and unconditional adjustments', async (t) => {
  const table = BucketTable.create(1024)
  t.equal(table.charge(rps, 'k', 4, NOW), Status.OK)
  t.equal(table.charge(rps, 'k', -3, NOW), Status.OK, 'negative cost = refund')
  t.equal(table.afterNs, 100_000_000)
  t.equal(table.adjust(rps, 'k', -10, NOW), Status.OK, 'refund beyond the level')
  t.equal(table.afterNs, 0, 'empty, not in credit')
  t.equal(fill(table), 5, 'still only a burst of 5 after an over-refund')
  t.equal(table.adjust(rps, 'absent', -1, NOW), Status.OK)
  t.equal(table.stats().inserted, 1, 'a refund to an absent bucket inserts nothing')
  t.equal(table.adjust(rps, 'debt', 8, NOW), Status.OK, 'usage that already happened may exceed the burst')
  t.equal(table.afterNs, 800_000_000)
  t.equal(table.charge(rps, 'debt', 1, NOW + 300_000_000n), Status.DENIED, 'the debt is paid first')
  t.equal(table.retryNs, 100_000_000)
  t.equal(table.charge(rps, 'k', 0, NOW), Status.OK, 'cost 0 is a peek')
  t.equal(table.charge(rps, 'k', Number.NaN, NOW), Status.OK, 'NaN cost does not throw (counts as 0)')
  t.equal(table.charge(rps, 'fractional', 1.6, NOW), Status.OK)
  t.equal(table.afterNs, 200_000_000, '1.6 rounds to 2')
})

t.test('tier scale and rate changes share the bucket: levels survive a reload', async (t) => {
  const table = BucketTable.create(1024)
  const gold = compileLimit(rps10, 4)
  t.equal(gold.burst, 20)
  t.equal(gold.tNs, 25_000_000)
  t.equal(table.charge(rps, 'k', 3, NOW), Status.OK, 'level 3 of 5 at scale 1 (300 ms)')
  t.equal(table.peek(gold, 'k', NOW), Status.OK)
  t.equal(table.afterNs, 300_000_000, 'same bucket seen through the gold tier')
  // at scale 4 the same 300 ms of TAT are 12 of 20 units: 8 more fit
  t.equal(fill(table, gold), 8)
  // a reload that halves the rate: same name, same bucket, new T from the next request, no reset
  const slower = compileLimit({ ...rps10, amount: 5, burst: 5 }) // T = 200 ms, tau = 1 s
  t.equal(table.charge(slower, 'k', 1, NOW), Status.OK, 'the bucket (500 ms) plus one new T (200 ms) fits in 1 s')
  t.equal(table.afterNs, 700_000_000)
  t.equal(compileLimit({ ...rps10, per: 'org' }, 4).burst, 5, 'scale applies to per-key limits only')
})

t.test('keys: UTF-8, long keys as digests, none merged', async (t) => {
  const table = BucketTable.create(1024)
  const scopes = ['a', 'b', 'ä', 'a\u0308', '😀', '\ud800', '\ufffd', '192.168.0.1', '2001:db8:85a3::8a2e:370:7334',
    'x'.repeat(58), 'x'.repeat(59), 'x'.repeat(60), 'x'.repeat(300) + '1', 'x'.repeat(300) + '2', '']
  for (const [i, s] of scopes.entries()) t.equal(table.charge(rps, s, (i % 5) + 1, NOW), Status.OK)
  for (const [i, s] of scopes.entries()) {
    table.peek(rps, s, NOW)
    // '\ud800' (lone surrogate) and '\ufffd' encode to the same UTF-8, as in every UTF-8 encoder: one bucket
    const want = s === '\ud800' || s === '\ufffd' ? (1 + 2) * 100_000_000 : ((i % 5) + 1) * 100_000_000
    t.equal(table.afterNs, want, `scope ${JSON.stringify(s.slice(0, 12))}… (${s.length} chars)`)
  }
  t.equal(table.stats().inserted, scopes.length - 1)
})

const constantHash = { hash: () => 0 }

t.test('forced collisions: every key on one slot and one tag, each keeps its own level', async (t) => {
  const table = BucketTable.create(1024, 'deny_new', constantHash)
  const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`)
  for (const [i, k] of keys.entries()) t.equal(table.charge(rps, k, (i % 5) + 1, NOW), Status.OK)
  for (const [i, k] of keys.entries()) {
    table.peek(rps, k, NOW)
    t.equal(table.afterNs, ((i % 5) + 1) * 100_000_000, k)
  }
  t.equal(table.occupancy(NOW).live, 20, 'one slot per key')
  // and with the real hash the same keys spread out and agree
  const spread = BucketTable.create(1024)
  for (const [i, k] of keys.entries()) spread.charge(rps, k, (i % 5) + 1, NOW)
  for (const k of keys) {
    table.peek(rps, k, NOW)
    const a = table.afterNs
    spread.peek(rps, k, NOW)
    t.equal(spread.afterNs, a)
  }
})

t.test('table full: deny_new answers FULL and counts it; the window is PROBE slots', async (t) => {
  const table = BucketTable.create(1024, 'deny_new', constantHash)
  for (let i = 0; i < PROBE; i++) t.equal(table.charge(rps, `k${i}`, 1, NOW), Status.OK)
  t.equal(table.charge(rps, 'one-too-many', 1, NOW), Status.FULL)
  t.equal(table.charge(rps, 'another', 1, NOW), Status.FULL)
  t.equal(table.stats().full, 2)
  t.equal(table.charge(rps, 'k0', 1, NOW), Status.OK, 'existing keys are still served')
  t.equal(table.occupancy(NOW).live, PROBE)
})

t.test('drained slots are reclaimed and reused (counted), memory stays the configured size', async (t) => {
  const table = BucketTable.create(1024, 'deny_new', constantHash)
  for (let i = 0; i < PROBE; i++) table.charge(rps, `old${i}`, 5, NOW)
  const later = NOW + 600_000_000n // every old bucket (500 ms) has drained
  t.same(table.occupancy(later), { live: 0, drained: PROBE, tombstones: 0, empty: 1024 - PROBE })
  for (let i = 0; i < PROBE; i++) t.equal(table.charge(rps, `new${i}`, 2, later), Status.OK)
  const st = table.stats()
  t.equal(st.reclaimed, PROBE)
  t.equal(st.full, 0)
  t.equal(st.bytes, BucketTable.bytesFor(1024))
  t.same(table.occupancy(later), { live: PROBE, drained: 0, tombstones: 0, empty: 1024 - PROBE })
  table.peek(rps, 'old3', later)
  t.equal(table.afterNs, 0, 'a reclaimed bucket was empty anyway')
  table.peek(rps, 'new3', later)
  t.equal(table.afterNs, 200_000_000)
})

t.test('evict_idle: a full window gives up its idlest bucket (counted)', async (t) => {
  const table = BucketTable.create(1024, 'evict_idle', constantHash)
  for (let i = 0; i < PROBE; i++) table.charge(rps, `k${i}`, i === 7 ? 1 : 3, NOW)
  t.equal(table.charge(rps, 'newcomer', 2, NOW), Status.OK)
  t.equal(table.stats().evicted, 1)
  t.equal(table.stats().full, 0)
  table.peek(rps, 'k7', NOW)
  t.equal(table.afterNs, 0, 'the bucket nearest to empty was evicted')
  table.peek(rps, 'k8', NOW)
  t.equal(table.afterNs, 300_000_000, 'the others keep their levels')
  table.peek(rps, 'newcomer', NOW)
  t.equal(table.afterNs, 200_000_000)
  table.setWhenFull('deny_new')
  t.equal(table.charge(rps, 'late', 1, NOW), Status.FULL, 'policy switched in place')
  t.equal(table.whenFull, 'deny_new')
})

t.test('attach: a second handle on the same memory (as a worker does) sees the same buckets and clock', async (t) => {
  const a = BucketTable.create(4096, 'evict_idle')
  const b = BucketTable.attach(a.sab)
  t.equal(b.capacity, 4096)
  t.equal(b.whenFull, 'evict_idle')
  t.equal(b.clock.anchorNs, a.clock.anchorNs)
  a.charge(rps, 'shared', 3, NOW)
  b.peek(rps, 'shared', NOW)
  t.equal(b.afterNs, 300_000_000)
  const now = a.clock.now()
  t.ok(now > 1_700_000_000n * S && now < 3_000_000_000n * S, 'ns since the Unix epoch')
  t.ok(Math.abs(Number(now / 1_000_000n) - Date.now()) < 50, 'agrees with Date.now()')
  t.throws(() => BucketTable.attach(new SharedArrayBuffer(4096)), LeakyError)
  t.throws(() => BucketTable.attach(new SharedArrayBuffer(8)), LeakyError)
  t.throws(() => BucketTable.create(0), LeakyError)
})

t.test('compileLimit: T, tau, header fragments, validation at the config edge', async (t) => {
  const l = compileLimit({ name: 'key-tpm', per: 'key', unit: 'tokens', amount: 100_000, period_ms: 60_000, burst: 20_000 })
  t.equal(l.t, 600_000n)
  t.equal(l.tau, 12_000_000_000n)
  t.equal(l.policyItem, '"key-tpm";q=100000;w=60')
  t.equal(l.stateItem, '"key-tpm";r=')
  t.equal(compileLimit({ ...rps10, amount: 5, period_ms: 500 }).policyItem, '"rps";q=10;w=1', 'sub-second periods restated per second')
  const month = compileLimit({ name: 'm', per: 'org', unit: 'tokens', amount: 5e6, period_ms: 30 * 86_400_000, burst: 5e6 })
  t.equal(month.tau, 30n * 86_400n * S)
  for (const bad of [{ amount: 0 }, { period_ms: 0 }, { burst: 0 }, { amount: Number.NaN }, { amount: 2e9, period_ms: 1 },
    { name: 'n'.repeat(300) }, { amount: 1, period_ms: 1000, burst: 1e10 }]) {
    t.throws(() => compileLimit({ ...rps10, ...bad }), { code: 'LEAKY_CONFIG_INVALID' }, JSON.stringify(bad).slice(0, 40))
  }
  t.throws(() => compileLimit(rps10, 0), { code: 'LEAKY_CONFIG_INVALID' })
})
