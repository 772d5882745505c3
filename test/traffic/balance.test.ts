// The balancer on its own (src/traffic/balance.ts), on a private target table: the choice each policy makes,
// ejection bounds and backoff, with the clock passed in.
import t from 'tap'
import { Balancer } from '../../src/traffic/balance.js'
import { DEFAULT_OUTLIER } from '../../src/upstream/upstream.js'

const urls = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1']
let n = 0
/** a fresh upstream name each time: the table is this thread's, and slots are found by upstream and URL */
const name = () => `u${++n}`

t.test('p2c_least_inflight never picks the busier of two, so the busiest target is never chosen', async (t) => {
  const b = new Balancer(name(), urls, undefined, 'p2c_least_inflight', DEFAULT_OUTLIER)
  for (let i = 0; i < 5; i++) b.acquire(2)
  const counts = [0, 0, 0, 0]
  for (let i = 0; i < 4000; i++) counts[b.choose(1000, -1)]++
  t.equal(counts[2], 0, 'the target with 5 in flight loses every comparison')
  for (const i of [0, 1, 3]) t.ok(counts[i] > 1000, `target ${i}: ${counts[i]}`)
})

t.test('round_robin in turn; a retry takes the next one without moving the turn', async (t) => {
  const b = new Balancer(name(), urls.slice(0, 3), undefined, 'round_robin', DEFAULT_OUTLIER)
  t.same([b.choose(0, -1), b.choose(0, -1), b.choose(0, -1), b.choose(0, -1)], [0, 1, 2, 0])
  t.equal(b.choose(0, 1), 2, 'after target 1 failed')
  t.equal(b.choose(0, -1), 1, 'the turn goes on where it was')
})

t.test('weighted: smooth weighted round-robin, exact per cycle; weight 0 is never chosen', async (t) => {
  const b = new Balancer(name(), urls.slice(0, 3), [5, 1, 0], 'weighted', DEFAULT_OUTLIER)
  const seq = Array.from({ length: 12 }, () => b.choose(0, -1))
  t.same(seq.filter((i) => i === 0).length, 10)
  t.same(seq.filter((i) => i === 1).length, 2)
  t.notOk(seq.includes(2))
  t.not(seq.slice(0, 6).join(''), '000001', 'smooth: the light target is not left for the end of the cycle')
})

t.test('ewma_latency prefers the faster target', async (t) => {
  const b = new Balancer(name(), urls.slice(0, 2), undefined, 'ewma_latency', DEFAULT_OUTLIER)
  for (let i = 0; i < 10; i++) {
    b.answered(0, 200, 200, 0)
    b.answered(1, 10, 200, 0)
  }
  const counts = [0, 0]
  for (let i = 0; i < 100; i++) counts[b.choose(0, -1)]++
  t.same(counts, [0, 100])
})

t.test('ejection: after consecutive failures, for base · 2^n, at most max_ejected_percent of the targets', async (t) => {
  const o = { consecutive_failures: 3, base_ejection: 1000, max_ejection: 3000, max_ejected_percent: 50 }
  const b = new Balancer(name(), urls, undefined, 'round_robin', o)
  t.equal(b.failed(0, 0), 0)
  t.equal(b.failed(0, 0), 0)
  t.equal(b.failed(0, 0), 1000, 'third failure in a row: ejected for base_ejection')
  t.notOk(b.usable(0, 500))
  t.ok(b.usable(0, 1000), 'usable again when its time is up')
  b.answered(0, 5, 200, 1000)
  t.equal(b.failed(0, 1001), 0, 'a success ended the run')
  b.failed(0, 1001)
  t.equal(b.failed(0, 1002), 2000, 'second ejection: twice as long')
  b.failed(0, 3002); b.failed(0, 3002)
  t.equal(b.failed(0, 3002), 3000, 'capped at max_ejection')
  // 50 % of 4: two may be out at once
  for (let i = 0; i < 3; i++) b.failed(1, 4000)
  t.equal(b.ejectedNow(4000), 2)
  for (let i = 0; i < 5; i++) t.equal(b.failed(2, 4000), 0, 'a third stays in, however it fails')
  t.equal(b.choose(4000, -1), 2)
  t.equal(b.retryAfter(4000, 1000), 1, 'seconds until the soonest ejected target is back')
})

t.test('no usable target: -1, unless the one to avoid is usable', async (t) => {
  const b = new Balancer(name(), urls.slice(0, 2), undefined, 'p2c_least_inflight', { ...DEFAULT_OUTLIER, consecutive_failures: 1, max_ejected_percent: 100 })
  b.failed(0, 0)
  t.equal(b.choose(1, 1), 1, 'the failed target is all that is left')
  b.failed(1, 0)
  t.equal(b.choose(1, -1), -1)
})
