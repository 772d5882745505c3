// The worker-side API against a real generation buffer, read back through the hub's prom-client exposition: exact
// counts, labels from config only, caps that fold overflow into "other", the 64-bit carry, and a clean promtool lint.
import t from 'tap'
import { parseConfig, type Config } from '../../src/config/index.js'
import { MetricsHub } from '../../src/observability/hub.js'
import { WorkerMetrics, DenyReason, UpstreamResult, normalizeModel, type RequestFacts } from '../../src/observability/metrics.js'
import { CAP, STRIPE, stripeWords } from '../../src/observability/layout.js'
import { openMetrics } from '../../src/observability/buffer.js'
import {
  parseExposition, promtoolPath, promtoolCheckMetrics, NO_PROMTOOL, sampleSum, histograms, histogramCount,
} from '../fixtures/observability/prom.js'

function config(extra = ''): Config {
  const r = parseConfig(`listen: 127.0.0.1:0
workers: 2
upstreams:
  openai: { provider: openai, targets: ["http://127.0.0.1:1"] }
  plain: { targets: ["http://127.0.0.1:1"] }
routes:
  - { path: /v1/, upstream: openai }
  - { path: /plain/, upstream: plain }
limits:
  key-rpm: { per: key, requests: 10/s }
keys:
  - { id: team-a, key: "secret-key-a", metrics_label: true }
  - { id: team-b, key: "secret-key-b" }
${extra}`, 'test.yaml', {})
  if (!r.ok) throw new Error(JSON.stringify(r.issues))
  return r.config
}

function hub(cfg = config()): MetricsHub {
  return new MetricsHub(cfg, { workers: 2, generation: 3, inflight: new SharedArrayBuffer(8) })
}

function worker(h: MetricsHub, index: number): WorkerMetrics {
  const w = new WorkerMetrics()
  w.attach(h.sab, index)
  return w
}

function req(over: Partial<RequestFacts> = {}): RequestFacts {
  return {
    method: 'POST', startMs: 0, ttfbMs: -1, bytesIn: 0, bytesOut: 0, keyId: '', errorCode: null,
    route: { path: '/v1/' }, upstream: { name: 'openai' }, controller: {}, ...over,
  }
}

t.test('requests are counted exactly by route, upstream, method and status class, across stripes', async (t) => {
  const h = hub()
  const w0 = worker(h, 0)
  const w1 = worker(h, 1)
  for (let i = 0; i < 7; i++) w0.request(req({ bytesIn: 100, bytesOut: 1000 }), 200, 3)
  for (let i = 0; i < 5; i++) w1.request(req({ bytesIn: 10, bytesOut: 1 }), 201, 0.4)
  w1.request(req({ method: 'GET', route: { path: '/plain/' }, upstream: { name: 'plain' } }), 502, 25_000)
  w0.request(req({ method: 'BREW', route: null, upstream: null, controller: null }), 404, 1)
  const text = (await h.metrics()).body
  const f = parseExposition(text)
  t.equal(sampleSum(f, 'leaky_requests_total', { route: '/v1/', upstream: 'openai', method: 'POST', status_class: '2xx' }), 12)
  t.equal(sampleSum(f, 'leaky_requests_total', { route: '/plain/', upstream: 'plain', method: 'GET', status_class: '5xx' }), 1)
  t.equal(sampleSum(f, 'leaky_requests_total', { route: 'none', upstream: 'none', method: 'other', status_class: '4xx' }), 1,
    'an unknown method is "other", an unmatched request has route "none"')
  t.equal(sampleSum(f, 'leaky_requests_total'), 14)
  t.equal(sampleSum(f, 'leaky_worker_requests_total', { worker: '0' }), 8)
  t.equal(sampleSum(f, 'leaky_worker_requests_total', { worker: '1' }), 6)
  t.equal(sampleSum(f, 'leaky_request_bytes_total', { route: '/v1/' }), 750)
  t.equal(sampleSum(f, 'leaky_response_bytes_total', { route: '/v1/' }), 7005)
  t.equal(histogramCount(text, 'leaky_request_duration_seconds', { route: '/v1/', upstream: 'openai' }), 12)
  const v1 = histograms(text, 'leaky_request_duration_seconds').find((x) => x.labels.route === '/v1/')!
  t.equal(v1.buckets.get('0.0005'), 5, '0.4 ms lands in le=0.0005')
  t.equal(v1.buckets.get('0.0025'), 5)
  t.equal(v1.buckets.get('0.005'), 12, '3 ms lands in le=0.005')
  t.equal(v1.sum, 0.023, 'sum in seconds')
  const plain = histograms(text, 'leaky_request_duration_seconds').find((x) => x.labels.route === '/plain/')!
  t.equal(plain.buckets.get('20'), 0)
  t.equal(plain.buckets.get('30'), 1, '25 s lands in le=30')
  t.equal(sampleSum(f, 'leaky_upstream_attempts_total', { upstream: 'openai' }), 12)
  t.equal(sampleSum(f, 'leaky_upstream_errors_total', { upstream: 'plain', kind: '5xx' }), 1)
  t.notOk(/^leaky_upstream_\w+\{[^}]*upstream="none"/m.test(text), 'no upstream series for requests that never reached one')
})

t.test('prom-client values (getMetricsAsJSON) and the text exposition agree', async (t) => {
  const h = hub()
  const w = worker(h, 0)
  for (let i = 0; i < 3; i++) w.request(req({ bytesOut: 7 }), 200, 2)
  w.request(req({ method: 'GET', route: { path: '/plain/' }, upstream: { name: 'plain' } }), 404, 0.3)
  const text = parseExposition((await h.metrics()).body)
  const json = (await h.registry.getMetricsAsJSON()) as Array<{ name: string; values: Array<{ labels: Record<string, string>; value: number; metricName?: string }> }>
  for (const name of ['leaky_requests_total', 'leaky_response_bytes_total', 'leaky_worker_requests_total']) {
    const j = json.find((m) => m.name === name)!
    for (const v of j.values) t.equal(sampleSum(text, name, v.labels), v.value, `${name} ${JSON.stringify(v.labels)}`)
    t.equal(j.values.length, text.find((m) => m.name === name)!.metrics.length)
  }
  const hist = json.find((m) => m.name === 'leaky_request_duration_seconds')!
  const count = hist.values.find((v) => v.metricName === 'leaky_request_duration_seconds_count' && v.labels.route === '/v1/')!
  t.equal(count.value, 3)
})

t.test('TTFB is observed only when the upstream answered', async (t) => {
  const h = hub()
  const w = worker(h, 0)
  w.request(req({ ttfbMs: 2 }), 200, 10)
  w.request(req({ ttfbMs: -1, errorCode: 'LEAKY_UPSTREAM_CONNECT' }), 502, 10)
  const text = (await h.metrics()).body
  t.equal(histogramCount(text, 'leaky_time_to_first_byte_seconds', { route: '/v1/' }), 1)
  t.equal(histogramCount(text, 'leaky_request_duration_seconds', { route: '/v1/' }), 2)
  const f = parseExposition(text)
  t.equal(sampleSum(f, 'leaky_upstream_errors_total', { upstream: 'openai', kind: 'connect' }), 1)
  t.equal(sampleSum(f, 'leaky_upstream_attempts_total', { upstream: 'openai' }), 2)
})

t.test('limiter decisions by limit and result, denials by reason, key ids only where marked', async (t) => {
  const h = hub()
  const w = worker(h, 1)
  const lim = w.limitSlot('key-rpm')
  for (let i = 0; i < 3; i++) w.limitDecision(lim, true)
  w.limitDecision(lim, false)
  w.limitDecision(lim, false, DenyReason.OVER_BURST)
  w.limitDecision(lim, false, DenyReason.TABLE_FULL)
  w.request(req({ keyId: 'team-a', errorCode: 'LEAKY_RATE_LIMITED', controller: null }), 429, 1)
  w.request(req({ keyId: 'team-a' }), 200, 1)
  w.request(req({ keyId: 'team-b', errorCode: 'LEAKY_RATE_LIMITED', controller: null }), 429, 1)
  const text = (await h.metrics()).body
  const f = parseExposition(text)
  t.equal(sampleSum(f, 'leaky_limiter_decisions_total', { limit: 'key-rpm', result: 'allowed' }), 3)
  t.equal(sampleSum(f, 'leaky_limiter_decisions_total', { limit: 'key-rpm', result: 'denied' }), 3)
  t.equal(sampleSum(f, 'leaky_limiter_denied_total', { limit: 'key-rpm', reason: 'rate' }), 1)
  t.equal(sampleSum(f, 'leaky_limiter_denied_total', { limit: 'key-rpm', reason: 'over_burst' }), 1)
  t.equal(sampleSum(f, 'leaky_limiter_denied_total', { limit: 'key-rpm', reason: 'table_full' }), 1)
  t.equal(sampleSum(f, 'leaky_key_requests_total', { key_id: 'team-a' }), 2)
  t.equal(sampleSum(f, 'leaky_key_rate_limited_total', { key_id: 'team-a' }), 1)
  t.equal(sampleSum(f, 'leaky_key_rate_limited_total', { key_id: 'other' }), 1, 'an unmarked key counts under "other"')
  t.notOk(text.includes('team-b'), 'a key without metrics_label never becomes a label')
  t.equal(sampleSum(f, 'leaky_rate_limited_requests_total', { route: '/v1/' }), 2)
  t.equal(sampleSum(f, 'leaky_upstream_attempts_total', { upstream: 'openai' }), 1, 'a 429 from the proxy is no upstream attempt')
  t.notOk(text.includes('secret-key'), 'no key material')
})

t.test('tokens by upstream, provider, normalised model and kind; models capped with overflow under "other"', async (t) => {
  const h = hub()
  const w = worker(h, 0)
  w.usage('openai', { model: 'GPT-4o-2024-08-06', prompt: 10, completion: 20, thoughts: 3, cached: 4, cacheWrite: 0, toolPrompt: 0, audio: 0 })
  w.usage('openai', { model: 'gpt-4o', prompt: 1, completion: 2, thoughts: 0, cached: -1, cacheWrite: 0, toolPrompt: 0, audio: 0 })
  w.usage('openai', { model: 'models/gemini-1.5-pro', prompt: 5, completion: 5, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0 })
  let many = 0
  for (let i = 0; i < CAP.models + 20; i++) {
    w.usage('openai', { model: `tenant-model-${i}`, prompt: 1, completion: 0, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0 })
    many++
  }
  const text = (await h.metrics()).body
  const f = parseExposition(text)
  t.equal(sampleSum(f, 'leaky_llm_tokens_total', { provider: 'openai', model: 'gpt-4o', kind: 'prompt' }), 11)
  t.equal(sampleSum(f, 'leaky_llm_tokens_total', { model: 'gpt-4o', kind: 'completion' }), 22)
  t.equal(sampleSum(f, 'leaky_llm_tokens_total', { model: 'gpt-4o', kind: 'thoughts' }), 3)
  t.equal(sampleSum(f, 'leaky_llm_tokens_total', { model: 'gpt-4o', kind: 'cached' }), 4)
  t.equal(sampleSum(f, 'leaky_llm_tokens_total', { model: 'gemini-1.5-pro' }), 10)
  const models = new Set(f.find((x) => x.name === 'leaky_llm_tokens_total')!.metrics.map((m) => m.labels!.model))
  t.ok(models.size <= CAP.models, `${models.size} model label values (cap ${CAP.models})`)
  t.ok(models.has('other'), 'overflow goes to "other"')
  t.equal(sampleSum(f, 'leaky_llm_tokens_total', { kind: 'prompt' }), 11 + 5 + many, 'no token is lost past the cap')
})

t.test('model names are normalised', async (t) => {
  t.equal(normalizeModel('GPT-4o-2024-08-06'), 'gpt-4o')
  t.equal(normalizeModel('claude-3-5-sonnet-20241022'), 'claude-3-5-sonnet')
  t.equal(normalizeModel('models/gemini-2.0-flash'), 'gemini-2.0-flash')
  t.equal(normalizeModel('qwen-max "x"{y}'), 'qwen-max_x_y_')
  t.equal(normalizeModel(''), 'unknown')
  t.equal(normalizeModel('a'.repeat(300)).length, 64)
})

t.test('estimate ratio histogram', async (t) => {
  const h = hub()
  const w = worker(h, 0)
  w.estimateError('openai', 100, 100)
  w.estimateError('openai', 80, 100)
  w.estimateError('openai', 300, 100)
  w.estimateError('openai', 5, 0) // nothing reported: not an observation
  const text = (await h.metrics()).body
  const [hist] = histograms(text, 'leaky_llm_estimate_ratio')
  t.equal(hist.count, 3)
  t.equal(hist.buckets.get('0.75'), 0)
  t.equal(hist.buckets.get('0.9'), 1)
  t.equal(hist.buckets.get('1'), 2)
  t.equal(hist.buckets.get('4'), 3)
  t.equal(hist.sum, 4.8)
})

t.test('a counter carries past 2^32 into its high word', async (t) => {
  const h = hub()
  const w = worker(h, 1)
  const v = openMetrics(h.sab!)
  const word = v.layout.stripe0 + 1 * stripeWords() + STRIPE.requests * 2
  v.u32[word] = 0xffffffff - 1
  for (let i = 0; i < 3; i++) w.request(req(), 200, 1)
  t.equal(h.reader!.counter(STRIPE.requests), 2 ** 32 + 1)
  const f = parseExposition((await h.metrics()).body)
  t.equal(sampleSum(f, 'leaky_worker_requests_total', { worker: '1' }), 2 ** 32 + 1)
})

t.test('disabled or unattached: every call is a no-op', async (t) => {
  const w = new WorkerMetrics()
  t.equal(w.enabled, false)
  w.request(req(), 200, 1)
  w.limitDecision(w.limitSlot('x'), true)
  w.usage('a', { model: 'b', prompt: 1, completion: 1, thoughts: 1, cached: 1, cacheWrite: 0, toolPrompt: 0, audio: 0 })
  const off = new MetricsHub({ ...config(), metrics: { enabled: false } } as Config, { workers: 2, generation: 1, inflight: new SharedArrayBuffer(8) })
  t.equal(off.sab, null)
  w.attach(off.sab, 0)
  t.equal(w.enabled, false)
  const text = (await off.metrics()).body
  t.match(text, /leaky_build_info\{/, 'main-thread metrics are still served')
  t.notMatch(text, /leaky_requests_total\{/)
})

t.test('operations: generation, reloads, restarts, build info, in-flight', async (t) => {
  const inflight = new SharedArrayBuffer(8)
  const h = new MetricsHub(config(), { workers: 2, generation: 7, inflight })
  Atomics.store(new Int32Array(inflight), 0, 5)
  h.reloaded(true)
  h.reloaded(true)
  h.reloaded(false)
  h.workerRestarted()
  h.setUpgrades(6)
  h.configure(config(), 4)
  const f = parseExposition((await h.metrics()).body)
  t.equal(sampleSum(f, 'leaky_generation'), 7)
  t.equal(sampleSum(f, 'leaky_config_version'), 4)
  t.equal(sampleSum(f, 'leaky_config_reloads_total', { result: 'success' }), 2)
  t.equal(sampleSum(f, 'leaky_config_reloads_total', { result: 'failure' }), 1)
  t.equal(sampleSum(f, 'leaky_worker_restarts_total'), 1)
  t.equal(sampleSum(f, 'leaky_upgrades_total'), 6)
  t.equal(sampleSum(f, 'leaky_requests_in_flight'), 5)
  const build = f.find((x) => x.name === 'leaky_build_info')!.metrics[0].labels!
  t.equal(build.node, process.version)
  t.match(build.uws, /^\d+\.\d+\.\d+$/)
  t.match(build.version, /^\d+\.\d+\.\d+/)
  t.ok(f.some((x) => x.name === 'process_cpu_seconds_total'), 'default process metrics')
  t.notOk(f.some((x) => x.name.startsWith('leaky_limiter_table')), 'no table metrics until a limiter probe exists')
})

t.test('under a supervisor its counters win, but never below what this generation saw', async (t) => {
  const h = hub()
  let info: Record<string, unknown> = { reloads_ok: 5, reloads_failed: 2, upgrades_ok: 3, restarts: 1 }
  h.supervisor = () => info
  let f = parseExposition((await h.metrics()).body)
  t.equal(sampleSum(f, 'leaky_config_reloads_total', { result: 'success' }), 5)
  t.equal(sampleSum(f, 'leaky_config_reloads_total', { result: 'failure' }), 2, 'includes configs that failed to parse in the master')
  t.equal(sampleSum(f, 'leaky_upgrades_total'), 3)
  t.equal(sampleSum(f, 'leaky_generation_restarts_total'), 1)
  // a reload applied here before the master's next info message
  info = { reloads_ok: 0, reloads_failed: 0, upgrades_ok: 0, restarts: 0 }
  h.reloaded(true)
  f = parseExposition((await h.metrics()).body)
  t.equal(sampleSum(f, 'leaky_config_reloads_total', { result: 'success' }), 1)
})

t.test('limiter probe: table occupancy, capacity and events', async (t) => {
  const h = hub()
  let walks = 0
  const { tableProbe } = await import('../../src/observability/table-probe.js')
  h.setLimiterProbe(tableProbe({ capacity: 1024, stats: () => ({ evicted: 3, full: 2 }), occupancy: () => (walks++, { live: 17 }), peek: () => 0, afterNs: 0 }, () => 0n))
  const f = parseExposition((await h.metrics()).body)
  t.equal(sampleSum(f, 'leaky_limiter_table_used_slots'), 17)
  t.equal(sampleSum(f, 'leaky_limiter_table_capacity_slots'), 1024)
  t.equal(sampleSum(f, 'leaky_limiter_table_events_total', { event: 'evicted' }), 3)
  t.equal(sampleSum(f, 'leaky_limiter_table_events_total', { event: 'full' }), 2)
  await h.metrics()
  t.equal(walks, 1, 'one table walk serves the scrapes of a second')
  t.same(h.statusJson().table, { used: 17, capacity: 1024, evicted: 3, full: 2 })
})

t.test('1,000 route × status series: promtool finds nothing to complain about', async (t) => {
  const routes = Array.from({ length: 200 }, (_, i) => `  - { path: /r${i}/, upstream: plain }`).join('\n')
  const r = parseConfig(`listen: 127.0.0.1:0
workers: 2
upstreams:
  plain: { targets: ["http://127.0.0.1:1"] }
routes:
${routes}
`, 'big.yaml', {})
  if (!r.ok) throw new Error('config')
  const h = hub(r.config)
  const w = worker(h, 0)
  for (let i = 0; i < 200; i++) for (const st of [200, 301, 404, 503, 101]) w.request(req({ method: 'GET', route: { path: `/r${i}/` }, upstream: { name: 'plain' } }), st, 1)
  const text = (await h.metrics()).body
  const f = parseExposition(text)
  t.equal(f.find((x) => x.name === 'leaky_requests_total')!.metrics.length, 1000)
  t.equal(sampleSum(f, 'leaky_requests_total'), 1000)
  if (promtoolPath() === null) return t.skip(NO_PROMTOOL)
  const lint = promtoolCheckMetrics(text)
  t.equal(lint.output, '', 'promtool check metrics reports nothing')
  t.equal(lint.status, 0)
})

t.test('stripes and caps are what the layout promises', async (t) => {
  const h = hub()
  t.equal(h.reader!.stripes, 2)
  const v = openMetrics(h.sab!)
  t.equal(v.routes.name(0), 'other')
  t.ok(v.routes.used >= 4, 'config routes and "none" are interned by the main thread')
  // a third worker index (a replacement past the count) still lands in a stripe
  const w = worker(h, 5)
  w.request(req(), 200, 1)
  t.equal(h.reader!.counter(STRIPE.requests), 1)
  const ids = Array.from({ length: 3 }, (_, i) => UpstreamResult.OK + i)
  t.same(ids, [0, 1, 2])
})
