// Real worker threads on one shared table (fixture: test/fixtures/limiter/hammer.mjs, which loads dist/: build
// first with npx tsc -p tsconfig.build.json).
import t from 'tap'
import { compileLimit, type LimitDef } from '../../src/limiter/limit.js'
import { BucketTable } from '../../src/limiter/table.js'
import { hammer } from '../fixtures/limiter/threads.js'

const S = 1_000_000_000n
const NOW = 1_780_000_000n * S
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)

t.test('all-or-nothing under concurrency: no bound exceeded, denied requests leave no charge', async (t) => {
  const table = BucketTable.create(4096)
  const perKey: LimitDef = { name: 'key-rpm', per: 'key', unit: 'requests', amount: 60, period_ms: 60_000, burst: 300 }
  const perOrg: LimitDef = { name: 'org-tpm', per: 'org', unit: 'tokens', amount: 6000, period_ms: 60_000, burst: 9000 }
  const keys = 6
  // time is frozen, so a bucket's level is exactly the sum of what was admitted into it
  const rs = await hammer(table, { mode: 'mix', perKey, perOrg, keys, now: String(NOW), iterations: 10_000 })
  const k = compileLimit(perKey)
  const o = compileLimit(perOrg)
  const tokens = sum(rs.map((r) => r.tokens as number))
  const denied = sum(rs.map((r) => r.denied as number))
  t.ok(denied > 10_000, `most requests were denied once the buckets filled (${denied})`)
  t.ok(tokens <= 9000, `org tokens admitted ${tokens} <= burst 9000`)
  table.peek(o, 'org', NOW)
  t.equal(table.afterNs / o.tNs, tokens, 'org bucket level = tokens admitted')
  for (let i = 0; i < keys; i++) {
    const admitted = sum(rs.map((r) => (r.admitted as number[])[i]))
    t.ok(admitted <= 300, `key-${i}: ${admitted} <= 300`)
    table.peek(k, `key-${i}`, NOW)
    t.equal(table.afterNs / k.tNs, admitted, `key-${i} bucket level = requests admitted`)
  }
})

t.test('forced collisions under concurrency: concurrent inserts never merge or duplicate a key', async (t) => {
  const keys = 24 // all on one slot with one tag: inserts race in the same probe window
  const table = BucketTable.create(1024, 'deny_new', { hash: () => 0 })
  const limit: LimitDef = { name: 'c', per: 'key', unit: 'requests', amount: 1, period_ms: 1000, burst: 200 }
  const rs = await hammer(table, { mode: 'collide', collide: true, limit, keys, now: String(NOW), iterations: 4000 })
  const l = compileLimit(limit)
  t.equal(table.occupancy(NOW).live, keys, 'exactly one slot per key')
  t.same(sum(rs.map((r) => sum(r.other as number[]))), 0, 'no FULL or BUSY')
  for (let i = 0; i < keys; i++) {
    const admitted = sum(rs.map((r) => (r.admitted as number[])[i]))
    table.peek(l, `tenant-${i}`, NOW)
    t.equal(table.afterNs / l.tNs, admitted, `tenant-${i}: level = its own admitted count (${admitted})`)
  }
  t.equal(table.stats().inserted, keys)
})

t.test('slot reuse under concurrency: reclaimed slots never take a charge meant for their old key', async (t) => {
  // 40 keys on one 32-slot window: buckets drain, their slots go to other keys while other threads charge them.
  // A charge that landed in a reused slot (ABA) would leave its own key uncharged and let it exceed its rate.
  const keys = 40
  const table = BucketTable.create(1024, 'deny_new', { hash: () => 0 })
  const limit: LimitDef = { name: 'churn', per: 'key', unit: 'requests', amount: 1000, period_ms: 1000, burst: 2 } // T = 1 ms
  const ticks = 60_000
  const stepNs = 20_000
  const rs = await hammer(table, { mode: 'churn', collide: true, limit, keys, base: String(NOW), stepNs, ticks })
  const bound = 2 + Math.floor((ticks * stepNs) / 1e6) + 1
  const st = table.stats()
  t.ok(st.reclaimed > 1000, `slots were reclaimed (${st.reclaimed}), full ${st.full}`)
  let over = 0
  for (let i = 0; i < keys; i++) {
    const admitted = sum(rs.map((r) => (r.admitted as number[])[i]))
    if (admitted > bound) over++
    t.ok(admitted <= bound, `tenant-${i}: ${admitted} <= ${bound}`)
  }
  t.equal(over, 0)
})

t.test('slot reuse with equal TATs (frozen time, refunds): no charge lands in another key\'s bucket', async (t) => {
  // Each charge is refunded right away: buckets drain to exactly `now`, so a reused slot's new TAT equals the old
  // key's. A charge that CASed into a reused slot would stay there (its refund goes to its own key), leaving a level.
  const table = BucketTable.create(1024, 'deny_new', { hash: () => 0 })
  const limit: LimitDef = { name: 'r', per: 'key', unit: 'requests', amount: 10, period_ms: 1000, burst: 5 }
  const rs = await hammer(table, { mode: 'refund', collide: true, limit, keys: 40, now: String(NOW), iterations: 20_000 })
  const st = table.stats()
  t.ok(st.reclaimed > 1000, `slots were reclaimed (${st.reclaimed}); ${sum(rs.map((r) => r.ok as number))} charged`)
  t.equal(table.occupancy(NOW).live, 0, 'every bucket is back to empty')
})
