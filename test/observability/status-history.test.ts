// The /status history across generations, in one process: a generation's samples leave with its bucket snapshot
// (takeSnapshot), the next generation continues them (restoreSnapshot), by name, with its own slots and counters.
import t from 'tap'
import { parseConfig, type Config } from '../../src/config/index.js'
import { MetricsHub } from '../../src/observability/hub.js'
import { WorkerMetrics, type RequestFacts } from '../../src/observability/metrics.js'
import { tableProbe } from '../../src/observability/table-probe.js'
import { isHistory } from '../../src/observability/history.js'
import { HIST_CELLS } from '../../src/observability/layout.js'
import { BucketTable } from '../../src/limiter/table.js'
import { restoreSnapshot, takeSnapshot } from '../../src/supervisor/buckets.js'

function config(yaml: string): Config {
  const r = parseConfig(yaml, 's.yaml', {})
  if (!r.ok) throw new Error(JSON.stringify(r.issues))
  return r.config
}

const before = config(`upstreams:
  oa: { provider: openai, targets: ["http://127.0.0.1:1"] }
routes:
  - { path: /v1/, upstream: oa }
keys:
  - { id: k1, key: "a" }
  - { id: k2, key: "b" }
`)
// the next generation's config lists things in another order: its label slots differ from the old one's
const after = config(`upstreams:
  gm: { provider: gemini, targets: ["http://127.0.0.1:1"] }
  oa: { provider: openai, targets: ["http://127.0.0.1:1"] }
routes:
  - { path: /g/, upstream: gm }
  - { path: /v1/, upstream: oa }
keys:
  - { id: k0, key: "z" }
  - { id: k2, key: "b" }
  - { id: k1, key: "a" }
`)

const req = (over: Partial<RequestFacts> = {}): RequestFacts => ({
  method: 'POST', startMs: 0, ttfbMs: -1, bytesIn: 0, bytesOut: 0, keyId: '', errorCode: null,
  route: { path: '/v1/' }, upstream: { name: 'oa' }, controller: {}, ...over,
})

/** A generation's metrics side as Generation wires it: a hub reporting on a bucket table. */
function generation(cfg: Config, number: number) {
  const hub = new MetricsHub(cfg, { workers: 1, generation: number, inflight: new SharedArrayBuffer(8) })
  const table = BucketTable.create(64)
  hub.setLimiterProbe(tableProbe(table, () => table.clock.now()))
  const w = new WorkerMetrics()
  w.attach(hub.sab, 0)
  return { hub, table, w }
}

const T0 = 1_800_000_000_000

t.test('an upgrade continues the series, the token totals and the limited keys', async (t) => {
  const g1 = generation(before, 1)
  g1.hub.sample(T0)
  for (let i = 0; i < 10; i++) g1.w.request(req(), 200, 3)
  g1.w.usage('oa', { model: 'gpt-4o', prompt: 100, completion: 50, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0 })
  g1.hub.sample(T0 + 1000)
  for (let i = 0; i < 4; i++) g1.w.request(req(), 200, 40)
  g1.w.request(req({ keyId: 'k2', errorCode: 'LEAKY_RATE_LIMITED', controller: null }), 429, 0.1)
  g1.hub.sample(T0 + 2000)
  const old = g1.hub.statusJson() as Record<string, any>

  // generation 2 started (and sampled, with nothing to count) before it got the buckets
  const g2 = generation(after, 2)
  g2.hub.sample(T0 + 1500)
  const snap = takeSnapshot(g1.table)
  t.ok(snap.status !== undefined, 'the snapshot carries the history')
  t.ok(isHistory(snap.status, HIST_CELLS))
  t.type(snap.status!.keys.find((k) => k.id === 'k1'), 'undefined', 'a key with no request does not travel')
  restoreSnapshot(g2.table, snap)
  const inherited = g2.hub.statusJson() as Record<string, any>
  // the handed-over instant adds a point of its own (the part-second since the last sample), if at least 0.5 s
  t.same(inherited.series.t.slice(0, old.series.t.length), old.series.t, 'the same seconds')
  t.same(inherited.series.rps.slice(0, old.series.rps.length), old.series.rps)
  t.same(inherited.series.p50_ms.slice(0, 2), old.series.p50_ms)
  t.same(inherited.series.p99_ms.slice(0, 2), old.series.p99_ms)
  t.same(inherited.series.limited_ps.slice(0, 2), old.series.limited_ps)

  // generation 2 serves: its rates continue the old ones, its totals add to the old totals
  for (let i = 0; i < 6; i++) g2.w.request(req(), 200, 3)
  g2.w.request(req({ keyId: 'k2', errorCode: 'LEAKY_RATE_LIMITED', controller: null }), 429, 0.1)
  g2.w.usage('oa', { model: 'gpt-4o', prompt: 10, completion: 20, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0 })
  g2.hub.sample(T0 + 3000)
  const s = g2.hub.statusJson() as Record<string, any>
  t.equal(s.series.rps.length, old.series.rps.length + 1, 'one more point: generation 2\'s first second')
  t.equal(s.series.rps.at(-1), 7, 'its own 7 requests, not its total against the old generation\'s')
  t.equal(s.series.limited_ps.at(-1), 1)
  t.equal(s.generation, 2)
  t.same(s.models.map((m: any) => [m.provider, m.model, m.total]), [['openai', 'gpt-4o', 180]], '150 + 30')
  t.same(s.limited_keys, [{ key_id: 'k2', limited: 2, requests: 2 }], 'both generations\' 429s for k2')
})

t.test('a history is inherited once, and one this build cannot read is refused', async (t) => {
  const g1 = generation(before, 1)
  g1.hub.sample(T0)
  g1.w.request(req(), 200, 3)
  g1.hub.sample(T0 + 1000)
  const snap = takeSnapshot(g1.table)
  const g2 = generation(after, 2)
  for (const bad of [null, 5, {}, { ...snap.status, version: 2 }, { ...snap.status, duration: [] },
    { ...snap.status, requests: new Float64Array(99) }, { ...snap.status, keys: [{ id: 3 }] }]) {
    t.notOk(isHistory(bad, HIST_CELLS), JSON.stringify(bad)?.slice(0, 40))
  }
  const r = restoreSnapshot(g2.table, { ...snap, status: { ...snap.status!, version: 9 as 1 } })
  t.ok(r.ok, 'the buckets are restored whatever the history')
  t.same((g2.hub.statusJson() as any).series.t, [], 'nothing inherited')
  restoreSnapshot(g2.table, snap)
  t.equal((g2.hub.statusJson() as any).series.rps[0], 1)
  restoreSnapshot(g2.table, snap)
  t.equal((g2.hub.statusJson() as any).series.rps.length, 1, 'a second history is not added on top')
})

t.test('a table no hub reports on: snapshots as before', async (t) => {
  const snap = takeSnapshot(BucketTable.create(16))
  t.notOk('status' in snap)
})
