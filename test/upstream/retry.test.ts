// The retry policy: which conditions retry, and the backoff's bounds (full jitter between MIN and a doubling ceiling).
import t from 'tap'
import { DEFAULT_ON, Failure, RetryPolicy, failureOf } from '../../src/upstream/retry.js'

t.test('conditions: listed failure kinds and statuses only', async (t) => {
  const p = new RetryPolicy({ attempts: 2, backoff: { min: 50, max: 2000 }, on: ['connect', 'reset', 429, 503] })
  t.equal(p.onFailure(Failure.CONNECT), true)
  t.equal(p.onFailure(Failure.RESET), true)
  t.equal(p.onFailure(Failure.TIMEOUT), false)
  t.equal(p.onFailure(Failure.INVALID), false, 'an invalid response is never retried')
  t.equal(p.onStatus(429), true)
  t.equal(p.onStatus(503), true)
  for (const s of [200, 204, 400, 404, 500, 502, 504, 599, 600, 0, -1]) t.equal(p.onStatus(s), false, `status ${s}`)
})

t.test('no retry section: no extra attempts, the default conditions decide failover', async (t) => {
  const p = new RetryPolicy(undefined)
  t.equal(p.attempts, 0)
  t.same(DEFAULT_ON, ['connect', 502, 503, 504])
  t.equal(p.onFailure(Failure.CONNECT), true)
  t.equal(p.onFailure(Failure.TIMEOUT), false)
  t.equal(p.onStatus(502), true)
  t.equal(p.onStatus(429), false)
  t.equal(p.onStatus(500), false)
})

t.test('backoff: between MIN and min(MAX, MIN·2ⁿ), uniform in between', async (t) => {
  const p = new RetryPolicy({ attempts: 10, backoff: { min: 50, max: 2000 }, on: [] })
  const cases: Array<[n: number, lo: number, hi: number]> = [[1, 50, 100], [2, 50, 200], [3, 50, 400], [5, 50, 1600], [6, 50, 2000], [10, 50, 2000]]
  for (const [n, lo, hi] of cases) {
    t.equal(p.backoff(n, 0), lo, `retry ${n} lowest`)
    t.ok(Math.abs(p.backoff(n, 0.999999) - hi) < 0.01, `retry ${n} highest`)
    t.equal(p.backoff(n, 0.5), (lo + hi) / 2, `retry ${n} middle`)
  }
  // the default random source stays inside the bounds
  for (let i = 0; i < 1000; i++) {
    const d = p.backoff(3)
    if (d < 50 || d > 400) t.fail(`out of bounds: ${d}`)
  }
})

t.test('backoff: MIN equal to MAX is a fixed wait; MIN 0 grows from MAX/16', async (t) => {
  const fixed = new RetryPolicy({ attempts: 3, backoff: { min: 200, max: 200 }, on: [] })
  t.equal(fixed.backoff(1, 0), 200)
  t.equal(fixed.backoff(3, 0.9), 200)
  const zero = new RetryPolicy({ attempts: 5, backoff: { min: 0, max: 1600 }, on: [] })
  t.equal(zero.backoff(1, 1), 200)
  t.equal(zero.backoff(2, 1), 400)
  t.equal(zero.backoff(4, 1), 1600)
  t.equal(zero.backoff(5, 1), 1600)
  t.equal(zero.backoff(1, 0), 0)
  const none = new RetryPolicy({ attempts: 1, backoff: { min: 0, max: 0 }, on: [] })
  t.equal(none.backoff(1, 0.7), 0)
})

t.test('failureOf: a connect timeout is a connect failure, a first-byte timeout is a timeout', async (t) => {
  t.equal(failureOf('LEAKY_UPSTREAM_CONNECT', 'ECONNREFUSED'), Failure.CONNECT)
  t.equal(failureOf('LEAKY_UPSTREAM_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT'), Failure.CONNECT)
  t.equal(failureOf('LEAKY_UPSTREAM_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT'), Failure.TIMEOUT)
  t.equal(failureOf('LEAKY_UPSTREAM_RESET', 'UND_ERR_SOCKET'), Failure.RESET)
  t.equal(failureOf('LEAKY_UPSTREAM_INVALID', 'HPE_INVALID_CONSTANT'), Failure.INVALID)
})
