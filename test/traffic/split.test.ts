// The split's choice on its own (src/traffic/split.ts): sticky, proportional, and moving only the clients it must
// when the weights change.
import t from 'tap'
import { SplitPlan, point } from '../../src/traffic/split.js'
import type { Upstream } from '../../src/upstream/upstream.js'
import type { RequestState } from '../../src/server/request-state.js'

const up = (name: string) => ({ name }) as unknown as Upstream
const ups = new Map(['stable', 'canary', 'home'].map((n) => [n, up(n)]))
const plan = (w: [number, number], sticky: 'key' | 'org' | 'ip' = 'key', override: string[] = []) =>
  new SplitPlan({ split: [{ upstream: 'stable', weight: w[0] }, { upstream: 'canary', weight: w[1] }], sticky, upstream_override: override }, ups.get('home')!, ups)
const req = (keyId: string, org = '', headers: string[] = []) =>
  ({ keyId, org, clientIp: '127.0.0.1', headers, upstream: ups.get('home') }) as unknown as RequestState
const ids = Array.from({ length: 20_000 }, (_, i) => `user-${i}`)

t.test('points spread evenly over [0, 1)', async (t) => {
  const buckets = new Array(10).fill(0)
  for (const id of ids) buckets[Math.floor(point(id) * 10)]++
  for (const b of buckets) t.ok(Math.abs(b - 2000) < 200, `${b} of 2000 per tenth`)
})

t.test('a 95/5 split sends about 5 %, and raising it to 10 % moves only stable clients to canary', async (t) => {
  const a = plan([95, 5])
  const b = plan([90, 10])
  let canary5 = 0
  let moved = 0
  let unstable = 0
  for (const id of ids) {
    const x = a.choose(req(id)).name
    const y = b.choose(req(id)).name
    if (x === 'canary') canary5++
    if (a.choose(req(id)).name !== x) unstable++
    if (x !== y) {
      moved++
      if (x !== 'stable' || y !== 'canary') t.fail(`${id} moved ${x} → ${y}`)
    }
  }
  t.equal(unstable, 0, 'the same client, the same side, every time')
  t.ok(Math.abs(canary5 / ids.length - 0.05) < 0.005, `canary share ${canary5 / ids.length}`)
  t.ok(Math.abs(moved / ids.length - 0.05) < 0.005, `${moved} moved`)
})

t.test('blue/green: 100/0 and 0/100 send everyone to one side', async (t) => {
  t.ok(ids.slice(0, 500).every((id) => plan([100, 0]).choose(req(id)).name === 'stable'))
  t.ok(ids.slice(0, 500).every((id) => plan([0, 100]).choose(req(id)).name === 'canary'))
})

t.test('sticky by org: a whole org on one side; the override only for listed keys', async (t) => {
  const p = plan([50, 50], 'org', ['ops'])
  const sides = new Set(['a', 'b', 'c', 'd'].map((k) => p.choose(req(k, 'acme')).name))
  t.equal(sides.size, 1)
  t.equal(p.choose(req('ops', '', ['x-leaky-upstream', 'home'])).name, 'home')
  const other = p.choose(req('dev')).name
  t.equal(p.choose(req('dev', '', ['x-leaky-upstream', other === 'stable' ? 'canary' : 'stable'])).name, other, 'ignored for others')
})
