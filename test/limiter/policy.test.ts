import t from 'tap'
import { compileLimit } from '../../src/limiter/limit.js'
import { Charges, chargeAll } from '../../src/limiter/policy.js'
import { BucketTable, PROBE, Status } from '../../src/limiter/table.js'

const S = 1_000_000_000n
const NOW = 1_780_000_000n * S
const rpm = compileLimit({ name: 'key-rpm', per: 'key', unit: 'requests', amount: 60, period_ms: 60_000, burst: 10 }) // T = 1 s
const tpm = compileLimit({ name: 'key-tpm', per: 'key', unit: 'tokens', amount: 6000, period_ms: 60_000, burst: 1000 }) // T = 10 ms
const daily = compileLimit({ name: 'org-daily', per: 'org', unit: 'tokens', amount: 86_400, period_ms: 86_400_000, burst: 3000 }) // T = 1 s

function after(table: BucketTable, limit = rpm, scope = 'k'): number {
  table.peek(limit, scope, NOW)
  return table.afterNs
}

t.test('admitted: every bucket charged, tats reported per charge', async (t) => {
  const table = BucketTable.create(1024)
  const req = new Charges()
  req.add(rpm, 'k', 1)
  req.add(tpm, 'k', 300)
  req.add(daily, 'org', 300)
  t.equal(chargeAll(table, req, NOW), Status.OK)
  t.equal(req.decider, -1)
  t.same([0, 1, 2].map((i) => req.afterNs(i)), [1e9, 3e9, 300e9])
  t.same([after(table), after(table, tpm), after(table, daily, 'org')], [1e9, 3e9, 300e9])
})

t.test('denied: buckets charged before the denial are refunded, the request consumes nothing', async (t) => {
  const table = BucketTable.create(1024)
  table.charge(daily, 'org', 2900, NOW) // 100 tokens left today
  const req = new Charges()
  req.add(rpm, 'k', 1)
  req.add(tpm, 'k', 300)
  req.add(daily, 'org', 300)
  t.equal(chargeAll(table, req, NOW), Status.DENIED)
  t.equal(req.decider, 2)
  t.equal(req.retryNs, 200e9, '200 more tokens at 1 s each')
  t.equal(req.afterNs(2), 2900e9)
  t.same([after(table), after(table, tpm), after(table, daily, 'org')], [0, 0, 2900e9], 'nothing consumed')
  // the same request, fitting: admitted, and only now charged
  req.clear()
  req.add(rpm, 'k', 1)
  req.add(tpm, 'k', 100)
  req.add(daily, 'org', 100)
  t.equal(chargeAll(table, req, NOW), Status.OK)
  t.same([after(table), after(table, tpm), after(table, daily, 'org')], [1e9, 1e9, 3000e9])
})

t.test('denied by several limits: retry-after is the longest wait, decider the limit that needs it', async (t) => {
  const table = BucketTable.create(1024)
  for (let i = 0; i < 10; i++) table.charge(rpm, 'k', 1, NOW) // rpm full: next in 1 s
  table.charge(daily, 'org', 3000, NOW) // daily full: 50 tokens need 50 s
  const req = new Charges()
  req.add(rpm, 'k', 1)
  req.add(tpm, 'k', 50)
  req.add(daily, 'org', 50)
  t.equal(chargeAll(table, req, NOW), Status.DENIED)
  t.equal(req.decider, 2)
  t.equal(req.retryNs, 50e9)
  t.equal(after(table, tpm), 0, 'the untried limit was not charged')
})

t.test('OVER_BURST is answered before anything is charged; FULL rolls back too', async (t) => {
  const table = BucketTable.create(1024)
  const req = new Charges()
  req.add(rpm, 'k', 1)
  req.add(tpm, 'k', 1001)
  t.equal(chargeAll(table, req, NOW), Status.OVER_BURST)
  t.equal(req.decider, 1)
  t.equal(after(table), 0)

  const crowded = BucketTable.create(1024, 'deny_new', { hash: () => 0 })
  for (let i = 0; i < PROBE; i++) crowded.charge(daily, `org${i}`, 1, NOW)
  req.clear()
  req.add(daily, 'org0', 10) // existing key
  req.add(rpm, 'brand-new', 1) // no room
  t.equal(chargeAll(crowded, req, NOW), Status.FULL)
  t.equal(req.decider, 1)
  t.equal(after(crowded, daily, 'org0'), 1e9, 'the charge before FULL was refunded')
})
