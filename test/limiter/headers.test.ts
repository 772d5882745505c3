import t from 'tap'
import { goDuration, policyItem, rateLimitHeaders, remaining } from '../../src/limiter/headers.js'
import { compileLimit } from '../../src/limiter/limit.js'
import { Charges, chargeAll } from '../../src/limiter/policy.js'
import { BucketTable, PROBE, Status } from '../../src/limiter/table.js'

const S = 1_000_000_000n
const NOW = 1_780_000_000n * S
const rpm = compileLimit({ name: 'key-rpm', per: 'key', unit: 'requests', amount: 600, period_ms: 60_000, burst: 60 }) // T = 100 ms
const rps = compileLimit({ name: 'ip-rps', per: 'ip', unit: 'requests', amount: 10, period_ms: 1000, burst: 20 }) // T = 100 ms
const tpm = compileLimit({ name: 'key-tpm', per: 'key', unit: 'tokens', amount: 100_000, period_ms: 60_000, burst: 20_000 }) // T = 0.6 ms

function asMap(flat: string[]): Record<string, string> {
  const m: Record<string, string> = {}
  for (let i = 0; i < flat.length; i += 2) {
    if (flat[i] in m) throw new Error(`duplicate header ${flat[i]}`)
    m[flat[i]] = flat[i + 1]
  }
  return m
}

function decide(table: BucketTable, list: [typeof rpm, string, number][], now = NOW): { req: Charges; h: Record<string, string> } {
  const req = new Charges()
  for (const [l, s, c] of list) req.add(l, s, c)
  chargeAll(table, req, now)
  const out: string[] = []
  rateLimitHeaders(req, out)
  return { req, h: asMap(out) }
}

t.test('goDuration: OpenAI / Go duration format', async (t) => {
  const cases: [number, string][] = [
    [0, '0s'], [-5, '0s'], [1, '1ms'], [999_999, '1ms'], [20e6, '20ms'], [999e6, '999ms'], [1e9, '1s'], [1.5e9, '1.5s'],
    [1.25e9, '1.25s'], [3.072e9, '3.072s'], [59.9991e9, '1m0s'], [60e9, '1m0s'], [90e9, '1m30s'], [360e9, '6m0s'],
    [3600e9, '1h0m0s'], [3723.25e9, '1h2m3.25s'], [86_400e9, '24h0m0s'],
  ]
  for (const [ns, s] of cases) t.equal(goDuration(ns), s, `${ns} ns`)
})

t.test('admitted: RateLimit for the tightest limit, OpenAI headers per unit, limit = burst, consistent with the buckets', async (t) => {
  const table = BucketTable.create(1024)
  table.charge(rps, '10.0.0.1', 15, NOW) // 5 of 20 left: the tightest by fraction
  const { req, h } = decide(table, [[rpm, 'k', 1], [rps, '10.0.0.1', 1], [tpm, 'k', 1500]])
  t.equal(req.status, Status.OK)
  t.notOk('Retry-After' in h)
  t.equal(h['RateLimit-Policy'], '"ip-rps";q=20;w=2', 'q = burst 20, drained in 2 s at 10/s')
  t.equal(h.RateLimit, '"ip-rps";r=4;t=2', '16 of 20 used: 4 left, empty in 1.6 s -> 2')
  // the requests headers describe the tighter requests limit in absolute terms: ip-rps (4 left) over key-rpm (59)
  t.equal(h['x-ratelimit-limit-requests'], '20', 'the burst: what may be sent before exhaustion')
  t.equal(h['x-ratelimit-remaining-requests'], '4')
  t.equal(h['x-ratelimit-reset-requests'], '1.6s')
  t.equal(h['x-ratelimit-limit-tokens'], '20000')
  t.equal(h['x-ratelimit-remaining-tokens'], '18500')
  t.equal(h['x-ratelimit-reset-tokens'], '900ms')
  // r is what the bucket really admits: exactly 4 more single requests, then a denial
  let n = 0
  while (table.charge(rps, '10.0.0.1', 1, NOW) === Status.OK) n++
  t.equal(n, 4)
  // and remaining() agrees with a peek of the bucket
  table.peek(tpm, 'k', NOW)
  t.equal(remaining(req, 2), Math.floor((tpm.tauNs - table.afterNs) / tpm.tNs))
})

t.test('denied: Retry-After rounded up (min 1), headers describe the denying limit', async (t) => {
  const table = BucketTable.create(1024)
  for (let i = 0; i < 60; i++) table.charge(rpm, 'k', 1, NOW)
  let { req, h } = decide(table, [[rpm, 'k', 1], [tpm, 'k', 10]])
  t.equal(req.status, Status.DENIED)
  t.equal(h['Retry-After'], '1', '100 ms wait -> 1 s (minimum 1)')
  t.equal(h['RateLimit-Policy'], '"key-rpm";q=60;w=6')
  t.equal(h.RateLimit, '"key-rpm";r=0;t=6')
  t.equal(h['x-ratelimit-limit-requests'], '60')
  t.equal(h['x-ratelimit-remaining-requests'], '0')
  t.equal(h['x-ratelimit-reset-requests'], '6s')
  t.equal(h['x-ratelimit-limit-tokens'], '20000', 'a limit not tried is peeked: its family is there on the 429')
  t.equal(h['x-ratelimit-remaining-tokens'], '20000', 'and it was not charged')
  t.equal(h['x-ratelimit-reset-tokens'], '0s')
  // a token request too big for what is left: waits for the missing tokens, rounded up to whole seconds
  table.charge(tpm, 'big', 19_000, NOW)
  ;({ req, h } = decide(table, [[tpm, 'big', 2500]]))
  t.equal(req.status, Status.DENIED)
  t.equal(req.retryNs, 900_000_000, '1500 tokens short at 0.6 ms')
  t.equal(h['Retry-After'], '1')
  t.equal(h.RateLimit, '"key-tpm";r=1000;t=12', 'r: 1000 would fit, just not 2500')
  ;({ h } = decide(table, [[tpm, 'big', 4100]], NOW))
  t.equal(h['Retry-After'], '2', '3100 tokens short = 1.86 s -> 2')
})

t.test('OVER_BURST: no Retry-After; FULL: 503-style Retry-After 1 only', async (t) => {
  const table = BucketTable.create(1024)
  let { h } = decide(table, [[rps, 'ip', 21]])
  t.notOk('Retry-After' in h)
  t.equal(h.RateLimit, '"ip-rps";r=20;t=0')
  const crowded = BucketTable.create(1024, 'deny_new', { hash: () => 0 })
  for (let i = 0; i < PROBE; i++) crowded.charge(rps, `ip${i}`, 1, NOW)
  ;({ h } = decide(crowded, [[rps, 'new', 1]]))
  t.same(h, { 'Retry-After': '1' })
})

t.test('denied by a later limit: the earlier ones are reported as their refund left them', async (t) => {
  const table = BucketTable.create(1024)
  table.charge(tpm, 'k', 5000, NOW) // 15000 of 20000 tokens left
  for (let i = 0; i < 20; i++) table.charge(rps, 'ip', 1, NOW) // ip-rps empty
  const { req, h } = decide(table, [[tpm, 'k', 300], [rps, 'ip', 1]])
  t.equal(req.status, Status.DENIED)
  t.equal(h['RateLimit-Policy'], '"ip-rps";q=20;w=2', 'the decider, although the tokens limit was charged first')
  t.equal(h['x-ratelimit-remaining-requests'], '0')
  t.equal(h['x-ratelimit-remaining-tokens'], '15000', 'refunded: the 300 tokens of the denied request are back')
  t.equal(h['x-ratelimit-reset-tokens'], '3s', '5000 tokens at 0.6 ms')
  table.peek(tpm, 'k', NOW)
  t.equal(table.afterNs, 5000 * tpm.tNs, 'the bucket agrees')
})

t.test('a 0-cost token charge (no estimate) only reads the bucket: tokens headers without a charge', async (t) => {
  const table = BucketTable.create(1024)
  table.charge(tpm, 'k', 20_000, NOW)
  table.adjust(tpm, 'k', 1000, NOW) // reconciled usage beyond the burst: a debt
  let { req, h } = decide(table, [[rpm, 'k', 1], [tpm, 'k', 0]])
  t.equal(req.status, Status.OK, 'a request that asks for no tokens is not held by the debt')
  t.equal(h['x-ratelimit-remaining-tokens'], '0')
  t.equal(h['x-ratelimit-limit-tokens'], '20000')
  table.peek(tpm, 'k', NOW)
  t.equal(table.afterNs, 21_000 * tpm.tNs, 'nothing charged')
  // denied by the requests limit: the 0-cost entry does not become the decider even though its wait is longer
  for (let i = 0; i < 59; i++) table.charge(rpm, 'k', 1, NOW)
  ;({ req, h } = decide(table, [[rpm, 'k', 1], [tpm, 'k', 0]]))
  t.equal(req.status, Status.DENIED)
  t.equal(h['RateLimit-Policy'], '"key-rpm";q=60;w=6')
  t.equal(h['Retry-After'], '1')
  t.equal(h['x-ratelimit-remaining-tokens'], '0')
})

t.test('OVER_BURST reports the other limits too; remaining never exceeds limit, whatever the state', async (t) => {
  const table = BucketTable.create(1024)
  const { req, h } = decide(table, [[rpm, 'k', 1], [tpm, 'k', 25_000]])
  t.equal(req.status, Status.OVER_BURST)
  t.equal(h['RateLimit-Policy'], '"key-tpm";q=20000;w=12')
  t.equal(h['x-ratelimit-remaining-requests'], '60', 'peeked, not charged')
  // a random walk over charges, refunds and time: every header set stays within its limit
  let now = NOW
  let seed = 7
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648)
  const bad: string[] = []
  const seen = new Set<number>()
  for (let i = 0; i < 2000; i++) {
    now += BigInt(Math.floor(rnd() * 50e6))
    if (rnd() < 0.1) table.adjust(tpm, 'k', Math.floor(rnd() * 4000) - 1000, now)
    const { req, h } = decide(table, [[rps, 'ip', 1], [rpm, 'k', 1], [tpm, 'k', Math.floor(rnd() * 3000)]], now)
    seen.add(req.status)
    for (const unit of ['requests', 'tokens']) {
      if (!(`x-ratelimit-limit-${unit}` in h)) bad.push(`step ${i}: no ${unit} headers`)
      if (Number(h[`x-ratelimit-remaining-${unit}`]) > Number(h[`x-ratelimit-limit-${unit}`])) bad.push(`step ${i}: ${unit} remaining > limit`)
    }
    const r = Number(/;r=(\d+)/.exec(h.RateLimit)![1])
    const q = Number(/;q=(\d+)/.exec(h['RateLimit-Policy'])![1])
    if (r > q) bad.push(`step ${i}: r ${r} > q ${q}`)
  }
  t.same(bad, [])
  t.ok(seen.has(Status.OK) && seen.has(Status.DENIED), 'the walk saw admissions and denials')
})

t.test('policyItem: w is the drain time of a full bucket in whole seconds, rounded up, at least 1', async (t) => {
  const mk = (amount: number, period_ms: number, burst: number) =>
    policyItem(compileLimit({ name: 'x', per: 'ip', unit: 'requests', amount, period_ms, burst }))
  t.equal(mk(20, 1000, 40), '"x";q=40;w=2', 'the shipped ip-rps')
  t.equal(mk(100_000, 60_000, 100_000), '"x";q=100000;w=60', 'the shipped ip-tpm: a minute, not 61 s')
  t.equal(mk(10, 1000, 15), '"x";q=15;w=2', '1.5 s -> 2')
  t.equal(mk(100, 1000, 10), '"x";q=10;w=1', '0.1 s -> 1')
  t.equal(mk(1000, 30 * 86_400_000, 100_000), '"x";q=100000;w=259200000')
})
