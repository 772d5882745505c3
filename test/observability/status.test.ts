// /status.json from samples taken at chosen instants: per-second rates, p50/p99 interpolated inside buckets as
// histogram_quantile does, tokens per minute, key ranking.
import t from 'tap'
import { parseConfig } from '../../src/config/index.js'
import { MetricsHub } from '../../src/observability/hub.js'
import { WorkerMetrics, type RequestFacts } from '../../src/observability/metrics.js'
import { quantileMs } from '../../src/observability/status.js'
import { HIST_CELLS } from '../../src/observability/layout.js'

const r = parseConfig(`upstreams:
  oa: { provider: openai, targets: ["http://127.0.0.1:1"] }
  gm: { provider: gemini, targets: ["http://127.0.0.1:1"] }
routes:
  - { path: /v1/, upstream: oa }
keys:
  - { id: k1, key: "a" }
  - { id: k2, key: "b" }
`, 's.yaml', {})
if (!r.ok) throw new Error('config')
const config = r.config

const req = (over: Partial<RequestFacts> = {}): RequestFacts => ({
  method: 'POST', startMs: 0, ttfbMs: -1, bytesIn: 0, bytesOut: 0, keyId: '', errorCode: null,
  route: { path: '/v1/' }, upstream: { name: 'oa' }, controller: {}, ...over,
})

t.test('rates, latency quantiles and 429s per second', async (t) => {
  const hub = new MetricsHub(config, { workers: 1, generation: 2, inflight: new SharedArrayBuffer(8) })
  const w = new WorkerMetrics()
  w.attach(hub.sab, 0)
  const t0 = 1_800_000_000_000
  hub.sample(t0)
  for (let i = 0; i < 10; i++) w.request(req(), 200, 3)
  hub.sample(t0 + 1000)
  for (let i = 0; i < 4; i++) w.request(req(), 200, 40)
  for (let i = 0; i < 2; i++) w.request(req({ keyId: 'k2', errorCode: 'LEAKY_RATE_LIMITED', controller: null }), 429, 0.1)
  w.request(req({ keyId: 'k1', errorCode: 'LEAKY_RATE_LIMITED', controller: null }), 429, 0.1)
  hub.sample(t0 + 2000)
  hub.sample(t0 + 3000)
  const s = hub.statusJson() as Record<string, any>
  t.same(s.series.t, [t0 / 1000 + 1, t0 / 1000 + 2, t0 / 1000 + 3])
  t.same(s.series.rps, [10, 7, 0])
  t.same(s.series.limited_ps, [0, 3, 0])
  t.equal(s.series.p50_ms[0], 3.75, '10 observations in (2.5, 5] ms: the median interpolates to 3.75')
  t.equal(s.series.p99_ms[0], 4.975)
  t.equal(s.series.p50_ms[2], null, 'no request, no latency')
  t.equal(s.series.p99_ms[1], 49.563, 'rank 6.93 of 7: 3 below, 4 in (25, 50] ms → 25 + 25 × 3.93/4')
  t.same(s.limited_keys, [{ key_id: 'k2', limited: 2, requests: 2 }, { key_id: 'k1', limited: 1, requests: 1 }])
  t.equal(s.generation, 2)
})

t.test('tokens per minute per provider and model, and the models table', async (t) => {
  const hub = new MetricsHub(config, { workers: 1, generation: 1, inflight: new SharedArrayBuffer(8) })
  const w = new WorkerMetrics()
  w.attach(hub.sab, 0)
  const t0 = 1_800_000_000_000
  hub.sample(t0)
  w.usage('oa', { model: 'gpt-4o', prompt: 100, completion: 50, thoughts: 0, cached: 80, cacheWrite: 0, toolPrompt: 0, audio: 0 })
  w.usage('gm', { model: 'gemini-2.0-flash', prompt: 10, completion: 10, thoughts: 5, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0 })
  hub.sample(t0 + 1000)
  const s = hub.statusJson() as Record<string, any>
  t.same(s.tokens.lines.map((l: any) => `${l.provider}/${l.model}`), ['openai/gpt-4o', 'gemini/gemini-2.0-flash'])
  t.same(s.tokens.lines[0].per_min, [9000], '150 tokens in one second (cached tokens are part of the prompt, not added)')
  t.same(s.tokens.lines[1].per_min, [1500])
  t.equal(s.models[0].total, 150)
  t.equal(s.models[1].total, 25)
})

t.test('quantile of an empty histogram is null; +Inf answers the largest bound', async (t) => {
  const d = new Float64Array(HIST_CELLS)
  t.equal(quantileMs(d, 0.5), null)
  d[HIST_CELLS - 2] = 3
  t.equal(quantileMs(d, 0.99), 120_000)
})
