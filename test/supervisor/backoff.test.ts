// CrashBackoff: the first restart is immediate, deaths in a row back off exponentially up to a ceiling, a crash
// loop is flagged from the third death, and a generation that served long enough clears the count.
import t from 'tap'
import { CrashBackoff, CRASH_LOOP_AT, delayFor } from '../../src/supervisor/backoff.js'

t.test('delays: 0, 250 ms, 500 ms, 1 s … capped at 30 s', async (t) => {
  t.same([1, 2, 3, 4, 5].map(delayFor), [0, 250, 500, 1000, 2000])
  t.equal(delayFor(20), 30_000)
  t.equal(delayFor(200), 30_000, 'no overflow far into a loop')
})

t.test('deaths in a row grow the delay and flag a crash loop', async (t) => {
  const b = new CrashBackoff(30_000)
  t.equal(b.died(0), 0, 'first death: restart at once')
  t.notOk(b.crashLoop)
  t.equal(b.died(100), 250)
  t.equal(b.died(0), 500)
  t.equal(b.consecutive, CRASH_LOOP_AT)
  t.ok(b.crashLoop)
  t.equal(b.restarts, 3)
})

t.test('a generation that served past the stable period resets the count; restarts keep counting', async (t) => {
  const b = new CrashBackoff(30_000)
  b.died(0)
  b.died(0)
  b.died(0)
  t.equal(b.died(31_000), 0, 'a death after a long life counts as the first')
  t.notOk(b.crashLoop)
  t.equal(b.restarts, 4)
  b.died(0)
  b.stable()
  t.equal(b.consecutive, 0)
  t.equal(b.died(0), 0)
})
