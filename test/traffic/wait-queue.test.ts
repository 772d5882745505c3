// The bulkhead's wait queue on a real shared target table: first in first out, bounded, woken by a place given
// back (Atomics.notify, as from another worker), timed out at its deadline, left by a request whose client went.
import t from 'tap'
import { TargetTable } from '../../src/traffic/target-table.js'
import { WaitQueue } from '../../src/traffic/wait-queue.js'
import type { RequestState } from '../../src/server/request-state.js'

const MAX = 1
// Node does not keep the loop alive for a pending Atomics.waitAsync (in the proxy its sockets do): this timer does
const alive = setInterval(() => {}, 1000)
t.teardown(() => clearInterval(alive))

interface Setup {
  table: TargetTable
  slot: number
  q: WaitQueue
  then: (s: RequestState) => void
  admitted: string[]
  expired: string[]
  /** resolves at the next admission or expiry */
  next: () => Promise<void>
}

function setup(timeout: number, size = 3): Setup {
  const table = TargetTable.create(16)
  const slot = table.slot('u', '#account')
  const admitted: string[] = []
  const expired: string[] = []
  let wake: (() => void) | null = null
  const q = new WaitQueue({ size, timeout }, table, slot, {
    enter: () => table.enter(slot, MAX),
    expired: (s) => {
      expired.push((s as unknown as { id: string }).id)
      wake?.()
    },
  })
  const then = (s: RequestState): void => {
    admitted.push((s as unknown as { id: string }).id)
    wake?.()
  }
  return { table, slot, q, then, admitted, expired, next: () => new Promise((r) => { wake = r }) }
}
const req = (id: string): RequestState => ({ id }) as unknown as RequestState

t.test('first in first out, one per freed place; the size bounds it', async (t) => {
  const { table, slot, q, then, admitted, next } = setup(60_000)
  t.ok(table.enter(slot, MAX), 'the one place is taken')
  for (const id of ['a', 'b', 'c']) t.ok(q.push(req(id), then))
  t.notOk(q.push(req('d'), then), 'full: refused, not queued')
  t.equal(table.waiting(slot), 3)
  for (const id of ['a', 'b', 'c']) {
    const got = next()
    table.release(slot)
    await got
    t.equal(admitted.at(-1), id)
    t.equal(table.inflight(slot), 1, 'it holds the freed place')
  }
  t.equal(table.waiting(slot), 0)
  t.equal(q.length, 0)
})

t.test('a request left in the queue (client gone) is skipped and frees its queue place', async (t) => {
  const { table, slot, q, then, admitted, next } = setup(60_000)
  t.ok(table.enter(slot, MAX))
  const a = req('a')
  q.push(a, then)
  q.push(req('b'), then)
  t.ok(q.remove(a))
  t.notOk(q.remove(a), 'only once')
  t.equal(table.waiting(slot), 1)
  const got = next()
  table.release(slot)
  await got
  t.same(admitted, ['b'])
})

t.test('past the timeout the head expires, in order, without a place', async (t) => {
  const { table, slot, q, then, admitted, expired, next } = setup(50)
  t.ok(table.enter(slot, MAX))
  q.push(req('a'), then)
  await next()
  t.same(expired, ['a'])
  t.same(admitted, [])
  t.equal(table.waiting(slot), 0)
  t.equal(table.inflight(slot), 1, 'the held place is untouched')
})

t.test('drained() resolves once the last waiting request got its place (a reload closes the old pools after it)', async (t) => {
  const { table, slot, q, then, admitted } = setup(60_000)
  t.ok(table.enter(slot, MAX))
  await q.drained()
  q.push(req('a'), then)
  let done = false
  const drained = q.drained().then(() => (done = true))
  await new Promise((r) => setImmediate(r))
  t.notOk(done, 'not while a request waits')
  table.release(slot)
  await drained
  t.same(admitted, ['a'])
})
