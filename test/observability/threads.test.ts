// Worker threads counting into one buffer at the same time, through the compiled worker-side API: every count
// arrives (no lost update under contention), and names two threads met at once are merged into one series.
import t from 'tap'
import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import { parseConfig } from '../../src/config/index.js'
import { MetricsHub } from '../../src/observability/hub.js'
import { parseExposition, sampleSum, histogramCount } from '../fixtures/observability/prom.js'

const FIXTURE = new URL('../fixtures/observability/bump.mjs', import.meta.url)
const THREADS = 4
const N = 20_000

t.test(`${THREADS} threads × ${N} requests: exact totals, merged labels`, async (t) => {
  const r = parseConfig('upstreams:\n  plain: { targets: ["http://127.0.0.1:1"] }\n', 'x.yaml', {})
  if (!r.ok) throw new Error('config')
  // fewer stripes than threads: two threads share each stripe, so contention on the same words is exercised too
  const hub = new MetricsHub(r.config, { workers: 2, generation: 1, inflight: new SharedArrayBuffer(8) })
  const go = new SharedArrayBuffer(4)
  const workers = Array.from({ length: THREADS }, (_, index) => new Worker(FIXTURE, { workerData: { sab: hub.sab, index, n: N, go } }))
  await Promise.all(workers.map((w) => once(w, 'online')))
  Atomics.store(new Int32Array(go), 0, 1)
  Atomics.notify(new Int32Array(go), 0)
  await Promise.all(workers.map((w) => once(w, 'message')))
  await Promise.all(workers.map((w) => w.terminate()))

  const text = (await hub.metrics()).body
  const f = parseExposition(text)
  const total = THREADS * N
  t.equal(sampleSum(f, 'leaky_requests_total'), total)
  t.equal(sampleSum(f, 'leaky_requests_total', { status_class: '5xx' }), THREADS * (N / 4))
  t.equal(sampleSum(f, 'leaky_requests_total', { method: 'GET' }), total / 2)
  t.equal(sampleSum(f, 'leaky_worker_requests_total'), total)
  for (let i = 0; i < 10; i++) {
    t.equal(sampleSum(f, 'leaky_requests_total', { route: `/new-${i}/` }), total / 10, `route /new-${i}/ counted once, whichever thread claimed it`)
  }
  const routes = new Set(f.find((x) => x.name === 'leaky_requests_total')!.metrics.map((m) => m.labels!.route))
  t.equal(routes.size, 10)
  t.equal(sampleSum(f, 'leaky_request_bytes_total'), total * 3)
  t.equal(sampleSum(f, 'leaky_response_bytes_total'), total * 5)
  let hist = 0
  for (let i = 0; i < 10; i++) hist += histogramCount(text, 'leaky_request_duration_seconds', { route: `/new-${i}/` })
  t.equal(hist, total)
  const denied = THREADS * Math.ceil(N / 3)
  t.equal(sampleSum(f, 'leaky_limiter_decisions_total', { limit: 'shared-limit', result: 'denied' }), denied)
  t.equal(sampleSum(f, 'leaky_limiter_decisions_total', { limit: 'shared-limit', result: 'allowed' }), total - denied)
  t.equal(sampleSum(f, 'leaky_llm_tokens_total', { kind: 'prompt' }), total * 2)
  t.equal(sampleSum(f, 'leaky_llm_tokens_total', { kind: 'completion' }), total)
  t.equal(new Set(f.find((x) => x.name === 'leaky_llm_tokens_total')!.metrics.map((m) => m.labels!.model)).size, 7)
  t.equal(sampleSum(f, 'leaky_upstream_errors_total', { upstream: 'plain', kind: '5xx' }), THREADS * (N / 4))
})
