// The export path under load: the sampled set is exactly the SDK's TraceIdRatioBased choice (and its share within
// statistical bounds) over a bounded number of requests; a collector that stops mid-load fails no request, its
// failed exports and dropped spans are counted, logged once, and the recovery is logged once it is back.
import t from 'tap'
import { request } from 'undici'
import { randomBytes } from 'node:crypto'
import { ROOT_CONTEXT, SpanKind } from '@opentelemetry/api'
import { SamplingDecision, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base'
import { startProxy, scrapeMetrics, metricValue, type Proxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { OtlpReceiver } from '../helpers/otlp.js'

const { stub, origin } = await startStub({ seed: 11 })
t.teardown(() => stub.close())

const config = (tracing: string) => `listen: 127.0.0.1:0
workers: 1
drain_timeout: 2s
admin: { listen: 127.0.0.1:0 }
log: { level: info, access: false }
tracing: ${tracing}
upstreams:
  llm: { provider: openai, targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: llm }
`

function post(p: Proxy, headers: Record<string, string> = {}) {
  return request(p.url('/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":8}',
  }).then(async (r) => {
    await r.body.dump()
    return r.statusCode
  })
}

/** Run `count` requests, `conc` at a time; `each(i)` after the i-th response. Returns the statuses. */
async function load(count: number, conc: number, send: (i: number) => Promise<number>, each?: (done: number) => void | Promise<void>): Promise<number[]> {
  const out: number[] = []
  let next = 0
  let done = 0
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < count) {
      const i = next++
      out[i] = await send(i)
      done++
      await each?.(done)
    }
  }))
  return out
}

t.test('head sampling at 0.25: exactly the SDK\'s choice of trace ids, a share within bounds', async (t) => {
  const rx = new OtlpReceiver()
  await rx.listen()
  const proxy = await startProxy(config(`{ endpoint: "${rx.endpoint}", sample: 0.25, parent_based: false }`))
  t.teardown(async () => {
    await proxy.stop()
    await rx.close()
  })
  const N = 400
  const ids = Array.from({ length: N }, () => randomBytes(16).toString('hex'))
  const statuses = await load(N, 8, (i) => post(proxy, { traceparent: `00-${ids[i]}-b7ad6b7169203331-01` }))
  t.same(new Set(statuses), new Set([200]))
  // a 5xx is always exported: once the one worker's sentinel has arrived, everything it sent before it has too
  t.equal(await post(proxy, { 'x-stub-error': '500', traceparent: '00-ffffffffffffffffffffffffffffffff-b7ad6b7169203331-00' }), 500)
  await rx.until(() => rx.spans.some((s) => s.traceId === 'f'.repeat(32)))
  const sdk = new TraceIdRatioBasedSampler(0.25)
  const want = ids.filter((id) => sdk.shouldSample(ROOT_CONTEXT, id, 'x', SpanKind.SERVER, {}, []).decision === SamplingDecision.RECORD_AND_SAMPLED)
  const got = new Set(rx.spans.filter((s) => s.kind === 2 && s.traceId !== 'f'.repeat(32)).map((s) => s.traceId))
  t.same([...got].sort(), want.sort(), 'the exported traces are the ones the SDK sampler picks')
  const sd = Math.sqrt(N * 0.25 * 0.75)
  t.ok(Math.abs(got.size - N * 0.25) <= 4.5 * sd, `${got.size} of ${N} sampled (expected ${N * 0.25} ± ${Math.round(4.5 * sd)})`)
})

t.test('collector stopped mid-load: no request fails, failed exports and drops are counted, logged once', async (t) => {
  let rx = new OtlpReceiver()
  const port = await rx.listen()
  const proxy = await startProxy(config(`{ endpoint: "${rx.endpoint}", sample: 1, timeout: 2s, max_queue: 64 }`))
  t.teardown(async () => {
    await proxy.stop()
    await rx.close()
  })
  let stopped = false
  const statuses = await load(300, 8, () => post(proxy), async (done) => {
    // stopped once the collector has taken spans, with most of the load still to come
    if (!stopped && rx.spans.length > 0 && done < 200) {
      stopped = true
      await rx.close()
    }
  })
  t.ok(stopped, 'the collector was stopped mid-load')
  t.equal(statuses.filter((s) => s !== 200).length, 0, '0 failed requests')
  let m = ''
  for (;;) {
    m = await scrapeMetrics(proxy)
    if (metricValue(m, 'leaky_tracing_export_errors_total') >= 2) break
    await new Promise((r) => setTimeout(r, 100))
  }
  t.ok(metricValue(m, 'leaky_tracing_dropped_spans_total') > 0, `dropped spans counted (${metricValue(m, 'leaky_tracing_dropped_spans_total')})`)
  t.ok(metricValue(m, 'leaky_tracing_exported_spans_total') > 0, 'spans exported before the stop counted')
  const failing = proxy.lines.filter((l) => l.msg === 'tracing export failing; spans are dropped until it recovers')
  t.equal(failing.length, 1, 'logged once for the transition, not per failed export')
  t.match(failing[0], { level: 'warn', endpoint: `http://127.0.0.1:${port}/v1/traces` })

  // the collector comes back on the same port: exports resume, logged once
  rx = new OtlpReceiver()
  await rx.listen(port)
  for (let i = 0; i < 3; i++) t.equal(await post(proxy), 200)
  await rx.until(() => rx.spans.length >= 6)
  await proxy.waitLog((l) => l.msg === 'tracing export recovered')
  t.equal(proxy.lines.filter((l) => l.msg === 'tracing export failing; spans are dropped until it recovers').length, 1)
})

t.test('a collector that never answers: no request fails or waits on it, timed-out exports and drops are counted', async (t) => {
  const rx = new OtlpReceiver()
  rx.hang = true
  await rx.listen()
  t.teardown(() => rx.close())
  const proxy = await startProxy(config(`{ endpoint: "${rx.endpoint}", sample: 1, timeout: 500ms, max_queue: 16 }`))
  t.teardown(() => proxy.stop())
  const statuses = await load(100, 8, () => post(proxy))
  t.equal(statuses.filter((s) => s !== 200).length, 0, '0 failed requests')
  let m = ''
  for (;;) {
    m = await scrapeMetrics(proxy)
    if (metricValue(m, 'leaky_tracing_export_errors_total') >= 1) break
    await new Promise((r) => setTimeout(r, 100))
  }
  // 200 spans against a queue of 16 with one export hanging: most of them are dropped, each one counted
  t.ok(metricValue(m, 'leaky_tracing_dropped_spans_total') >= 100, `dropped spans counted (${metricValue(m, 'leaky_tracing_dropped_spans_total')})`)
  t.equal(metricValue(m, 'leaky_tracing_exported_spans_total'), 0)
  t.ok(rx.requests >= 1, 'the export reached the collector, which never answered')
  const failing = await proxy.waitLog((l) => l.msg === 'tracing export failing; spans are dropped until it recovers')
  t.match(failing.error, /timeout|timed out/i)
})

t.test('stop: spans still on their way leave before the proxy exits', async (t) => {
  const rx = new OtlpReceiver()
  await rx.listen()
  t.teardown(() => rx.close())
  const proxy = await startProxy(config(`{ endpoint: "${rx.endpoint}", sample: 1 }`))
  t.teardown(() => proxy.stop())
  for (let i = 0; i < 3; i++) t.equal(await post(proxy), 200)
  // usually inside the worker's 200 ms batch window and the exporter's 1 s delay: then only the stop's flush sends them
  const before = rx.spans.length
  if (before === 6) t.comment('the machine was slow enough for the timers to export everything before the stop')
  t.equal(await proxy.stop(), 0)
  t.equal(rx.spans.filter((s) => s.kind === 2).length, 3, 'all three server spans arrived before the exit')
  t.equal(rx.spans.filter((s) => s.kind === 3).length, 3, 'and their attempt spans')
})

t.test('the standard OTEL_* environment variables configure an empty tracing section', async (t) => {
  const rx = new OtlpReceiver()
  await rx.listen()
  t.teardown(() => rx.close())
  const proxy = await startProxy(config('{}'), {
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: rx.endpoint,
      OTEL_EXPORTER_OTLP_HEADERS: 'x-honeycomb-team=hc-key-1,x-other=2',
      OTEL_TRACES_SAMPLER: 'always_on',
      OTEL_SERVICE_NAME: 'from-env',
    },
  })
  t.teardown(() => proxy.stop())
  t.equal(await post(proxy, { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' }), 200)
  await rx.until(() => rx.spans.some((s) => s.kind === 2))
  const server = rx.spans.find((s) => s.kind === 2)!
  t.equal(server.traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'always_on is not parent-based: sampled though the parent was not')
  t.equal(server.resource['service.name'], 'from-env')
  t.match(rx.headers[0], { 'x-honeycomb-team': 'hc-key-1', 'x-other': '2' }, 'OTEL_EXPORTER_OTLP_HEADERS sent')
  const on = await proxy.waitLog((l) => l.msg === 'tracing on')
  t.equal(on.endpoint, `${rx.endpoint}/v1/traces`)
})
