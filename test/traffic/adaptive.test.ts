// The adaptive concurrency limit (Gradient2) on a real shared target table, and the tier priorities it sheds by.
import t from 'tap'
import { TargetTable } from '../../src/traffic/target-table.js'
import { AdaptiveLimit } from '../../src/traffic/adaptive.js'
import { PriorityPlan } from '../../src/traffic/priority.js'

function limit(cfg: Partial<{ min: number; max: number; initial: number; headroom: number }> = {}): AdaptiveLimit {
  const table = TargetTable.create(16)
  return new AdaptiveLimit({ min: 4, max: 100, tolerance: 1.5, smoothing: 0.2, headroom: 20, ...cfg }, table, table.slot('u', '#account'))
}

t.test('starts at initial (default max); an idle upstream (under half the limit in flight) does not move it', async (t) => {
  t.equal(limit().limit(), 100)
  const a = limit({ initial: 20 })
  for (let i = 0; i < 50; i++) a.sample(100, 5)
  t.equal(a.limit(), 20)
})

t.test('steady latency under load: grows to max; latency 4× the usual: shrinks, never below min', async (t) => {
  const a = limit({ initial: 20 })
  for (let i = 0; i < 300; i++) a.sample(100, Math.ceil(a.limit()))
  t.equal(a.limit(), 100, 'grew to max')
  const before = a.limit()
  for (let i = 0; i < 5; i++) a.sample(400, Math.ceil(a.limit()))
  t.ok(a.limit() < before * 0.7, `shrank: ${a.limit()}`)
  for (let i = 0; i < 100; i++) a.sample(400, Math.ceil(a.limit()))
  // at grad 0.5, 0.8 · limit + 0.2 · (0.5 · limit + 4) settles at 8; the long average creeping up towards the new
  // latency (Gradient2 accepts a lasting change as the new normal over ~600 samples) holds it a little higher
  t.ok(a.limit() >= 4 && a.limit() < 20, `stays low while the latency stays 4× up: ${a.limit()}`)
  const b = limit({ min: 20, initial: 60 })
  for (let i = 0; i < 20; i++) b.sample(100, 60)
  for (let i = 0; i < 100; i++) b.sample(400, 60)
  t.equal(b.limit(), 20, 'never below min')
})

t.test('latency within the tolerance (1.4×) does not shrink it', async (t) => {
  const a = limit({ initial: 50 })
  for (let i = 0; i < 20; i++) a.sample(100, 50)
  const l = a.limit()
  for (let i = 0; i < 20; i++) a.sample(140, 60)
  t.ok(a.limit() >= l, `${l} → ${a.limit()}`)
})

t.test('one limit for every thread: a second view on the same table sees it', async (t) => {
  const table = TargetTable.create(16)
  const slot = table.slot('u', '#account')
  const cfg = { min: 4, max: 100, initial: 50, tolerance: 1.5, smoothing: 0.2, headroom: 20 }
  const a = new AdaptiveLimit(cfg, table, slot)
  const b = new AdaptiveLimit(cfg, new TargetTable(table.sab), slot)
  for (let i = 0; i < 20; i++) a.sample(100, 50)
  for (let i = 0; i < 5; i++) a.sample(800, 50)
  t.equal(b.limit(), a.limit())
  t.ok(b.limit() < 50)
})

t.test('priorities: ranks of the distinct values with 0 for no tier; the lowest may use limit × (1 - headroom)', async (t) => {
  const p = new PriorityPlan({ gold: { priority: 2 }, silver: { priority: 1 }, bronze: { priority: 0 }, platinum: { priority: 2 } })
  t.same([p.of('gold').level, p.of('platinum').level, p.of('silver').level, p.of('bronze').level, p.of('').level, p.of('gone').level], [0, 0, 0.5, 1, 1, 1])
  const a = limit({ initial: 100, headroom: 30 })
  t.same([a.bound(p.of('gold').level), a.bound(p.of('silver').level), a.bound(p.of('bronze').level)], [100, 85, 70])
  t.equal(new PriorityPlan({ a: { priority: 0 } }).of('a').level, 0, 'one priority in use: everyone may use the whole limit')
})
