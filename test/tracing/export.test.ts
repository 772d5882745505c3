// The export path: the sampled set is exactly the SDK's TraceIdRatioBased choice (and its share within statistical
// bounds) over 10 000 requests; a stop exports what is still on its way; the standard OTEL_*
// environment variables alone configure it. (A failing collector: collector.test.ts.)
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { ROOT_CONTEXT, SpanKind } from '@opentelemetry/api'
import { SamplingDecision, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base'
import { metricValue, scrapeMetrics, startProxy, type Proxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { OtlpReceiver, load, postChat, tracingConfig } from '../helpers/otlp.js'

const { stub, origin } = await startStub({ seed: 11 })
t.teardown(() => stub.close())

const config = (tracing: string) => tracingConfig(origin, tracing)
const post = postChat

t.test('head sampling over 10 000 requests: exactly the SDK\'s choice of trace ids, a share within bounds', async (t) => {
  const rx = new OtlpReceiver()
  await rx.listen()
  const RATIO = 0.1
  // every sampled span fits the queue: a drop here would be the exporter's, not the sampler's
  const proxy = await startProxy(config(`{ endpoint: "${rx.endpoint}", sample: ${RATIO}, parent_based: false, max_queue: 65536 }`))
  t.teardown(async () => {
    await proxy.stop()
    await rx.close()
  })
  // half continue a client's trace (ids the test knows: the SDK's decision is checked one by one), half start a
  // new one (ids the proxy draws: only the share can be checked)
  const N = 10_000
  const ids = Array.from({ length: N / 2 }, () => randomBytes(16).toString('hex'))
  const statuses = await load(N, 16, (i) => post(proxy, i % 2 === 0 ? { traceparent: `00-${ids[i >> 1]}-b7ad6b7169203331-01` } : {}))
  t.same(new Set(statuses), new Set([200]))
  // a 5xx is always exported: once the one worker's sentinel has arrived, everything it sent before it has too
  t.equal(await post(proxy, { 'x-stub-error': '500', traceparent: '00-ffffffffffffffffffffffffffffffff-b7ad6b7169203331-00' }), 500)
  await rx.until(() => rx.spans.some((s) => s.traceId === 'f'.repeat(32)))
  const sdk = new TraceIdRatioBasedSampler(RATIO)
  const want = ids.filter((id) => sdk.shouldSample(ROOT_CONTEXT, id, 'x', SpanKind.SERVER, {}, []).decision === SamplingDecision.RECORD_AND_SAMPLED)
  const known = new Set(ids)
  const servers = rx.spans.filter((s) => s.kind === 2 && s.traceId !== 'f'.repeat(32))
  const continued = new Set(servers.filter((s) => known.has(s.traceId)).map((s) => s.traceId))
  const started = new Set(servers.filter((s) => !known.has(s.traceId)).map((s) => s.traceId))
  t.same([...continued].sort(), want.sort(), 'the exported continued traces are the ones the SDK sampler picks')
  const sd = Math.sqrt(N * RATIO * (1 - RATIO))
  const k = continued.size + started.size
  t.ok(Math.abs(k - N * RATIO) <= 4.5 * sd, `${k} of ${N} sampled (expected ${N * RATIO} ± ${Math.round(4.5 * sd)})`)
  const sdHalf = Math.sqrt((N / 2) * RATIO * (1 - RATIO))
  t.ok(Math.abs(started.size - (N / 2) * RATIO) <= 4.5 * sdHalf, `new traces: ${started.size} of ${N / 2} sampled (expected ${(N / 2) * RATIO} ± ${Math.round(4.5 * sdHalf)})`)
  t.equal(metricValue(await scrapeMetrics(proxy), 'leaky_tracing_dropped_spans_total'), 0, 'no span dropped')
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
