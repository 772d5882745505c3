// The breaker as a state machine over a clock passed in: window, ratio, min_requests, cooldown, half-open trial.
import t from 'tap'
import { Admission, Breaker, Transition } from '../../src/upstream/breaker.js'

const cfg = { failure_ratio: 0.5, min_requests: 4, window: 10_000, cooldown: 5_000 }

t.test('opens once min_requests ended and the failed share reaches failure_ratio', async (t) => {
  const b = new Breaker(cfg)
  t.equal(b.record(0, true, false), Transition.NONE, '1 of 1 failed, below min_requests')
  t.equal(b.record(1, true, false), Transition.NONE)
  t.equal(b.record(2, false, false), Transition.NONE)
  t.equal(b.admit(3), Admission.PASS)
  t.equal(b.record(3, true, false), Transition.OPENED, '3 of 4 failed')
  t.equal(b.open, true)
  t.equal(b.requests, 4)
  t.equal(b.failures, 3)
  t.equal(b.admit(4), Admission.DENY)
  t.equal(b.retryAfter(4), 5, 'seconds left of the cooldown, rounded up')
  t.equal(b.retryAfter(3_500), 2)
  t.equal(b.retryAfter(4_999), 1, 'never below 1')
})

t.test('successes keep it closed: the ratio, not the count, of failures decides', async (t) => {
  const b = new Breaker(cfg)
  for (let i = 0; i < 10; i++) b.record(i, false, false)
  for (let i = 0; i < 9; i++) t.equal(b.record(100 + i, true, false), Transition.NONE, `failure ${i + 1} of ${11 + i}`)
  t.equal(b.record(200, true, false), Transition.OPENED, '10 of 20')
})

t.test('the window slides: old outcomes stop counting', async (t) => {
  const b = new Breaker(cfg)
  b.record(0, true, false)
  b.record(100, true, false)
  b.record(200, true, false)
  // 10.5 s later the first three are out of the 10 s window
  t.equal(b.record(10_500, true, false), Transition.NONE)
  t.equal(b.requests, 1)
  b.record(10_600, true, false)
  b.record(10_700, false, false)
  t.equal(b.record(10_800, true, false), Transition.OPENED, '3 of 4 inside the window')
  const c = new Breaker(cfg)
  c.record(0, true, false)
  c.record(1, true, false)
  c.record(2, true, false)
  t.equal(c.record(100_000, true, false), Transition.NONE, 'a long silence empties the window at once')
  t.equal(c.requests, 1)
})

t.test('after cooldown one trial: success closes with a fresh window', async (t) => {
  const b = new Breaker(cfg)
  for (let i = 0; i < 4; i++) b.record(i, true, false)
  t.equal(b.admit(4_999), Admission.DENY)
  t.equal(b.admit(5_003), Admission.TRIAL, 'cooldown over: the trial')
  t.equal(b.admit(5_004), Admission.DENY, 'only one trial at a time')
  t.equal(b.record(5_010, true, false), Transition.NONE, 'a straggler admitted before opening changes nothing')
  t.equal(b.admit(5_011), Admission.DENY)
  t.equal(b.record(5_100, false, true), Transition.CLOSED)
  t.equal(b.open, false)
  t.equal(b.admit(5_101), Admission.PASS)
  t.equal(b.requests, 0, 'the failures that opened it are forgotten')
  t.equal(b.record(5_200, true, false), Transition.NONE)
})

t.test('a failed trial reopens for another cooldown', async (t) => {
  const b = new Breaker(cfg)
  for (let i = 0; i < 4; i++) b.record(i, true, false)
  t.equal(b.admit(6_000), Admission.TRIAL)
  t.equal(b.record(6_050, true, true), Transition.OPENED)
  t.equal(b.admit(6_100), Admission.DENY)
  t.equal(b.retryAfter(6_100), 5)
  t.equal(b.admit(11_050), Admission.TRIAL)
})

t.test('a trial abandoned without an outcome lets the next request try', async (t) => {
  const b = new Breaker(cfg)
  for (let i = 0; i < 4; i++) b.record(i, true, false)
  t.equal(b.admit(6_000), Admission.TRIAL)
  b.release(false)
  t.equal(b.admit(6_001), Admission.DENY, 'releasing a non-trial does nothing')
  b.release(true)
  t.equal(b.admit(6_002), Admission.TRIAL)
})

t.test('failure_ratio 0 needs at least one failure; 1 needs all', async (t) => {
  const zero = new Breaker({ ...cfg, failure_ratio: 0 })
  for (let i = 0; i < 8; i++) t.equal(zero.record(i, false, false), Transition.NONE)
  t.equal(zero.record(9, true, false), Transition.OPENED)
  const one = new Breaker({ ...cfg, failure_ratio: 1, min_requests: 2 })
  one.record(0, false, false)
  for (let i = 1; i < 10; i++) t.equal(one.record(i, true, false), Transition.NONE)
  const all = new Breaker({ ...cfg, failure_ratio: 1, min_requests: 2 })
  all.record(0, true, false)
  t.equal(all.record(1, true, false), Transition.OPENED)
})

t.test('sameAs: a reload with the same settings keeps the breaker', async (t) => {
  const b = new Breaker(cfg)
  t.equal(b.sameAs({ ...cfg }), true)
  t.equal(b.sameAs({ ...cfg, cooldown: 1 }), false)
})
