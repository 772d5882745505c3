import t from 'tap'
import { goDuration, rateLimitHeaders, remaining } from '../../src/limiter/headers.js'
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

t.test('admitted: RateLimit for the tightest limit, OpenAI headers per unit, consistent with the buckets', async (t) => {
  const table = BucketTable.create(1024)
  table.charge(rps, '10.0.0.1', 15, NOW) // 5 of 20 left: the tightest by fraction
  const { req, h } = decide(table, [[rpm, 'k', 1], [rps, '10.0.0.1', 1], [tpm, 'k', 1500]])
  t.equal(req.status, Status.OK)
  t.notOk('Retry-After' in h)
  t.equal(h['RateLimit-Policy'], '"ip-rps";q=10;w=1')
  t.equal(h.RateLimit, '"ip-rps";r=4;t=2', '16 of 20 used: 4 left, empty in 1.6 s -> 2')
  // the requests headers describe the tighter requests limit in absolute terms: ip-rps (4 left) over key-rpm (59)
  t.equal(h['x-ratelimit-limit-requests'], '10')
  t.equal(h['x-ratelimit-remaining-requests'], '4')
  t.equal(h['x-ratelimit-reset-requests'], '1.6s')
  t.equal(h['x-ratelimit-limit-tokens'], '100000')
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
  t.equal(h['RateLimit-Policy'], '"key-rpm";q=600;w=60')
  t.equal(h.RateLimit, '"key-rpm";r=0;t=6')
  t.equal(h['x-ratelimit-remaining-requests'], '0')
  t.equal(h['x-ratelimit-reset-requests'], '6s')
  t.notOk('x-ratelimit-remaining-tokens' in h, 'rolled-back limits are not reported')
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
