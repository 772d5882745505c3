// A failing collector never fails a request: one that stops mid-load, or one that never answers. Failed exports
// and dropped spans are counted, the failure is logged once, and the recovery once the collector is back.
import t from 'tap'
import { startProxy, metricValue, type Proxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { OtlpReceiver, metricsWhen, load, postChat, tracingConfig } from '../helpers/otlp.js'

const { stub, origin } = await startStub({ seed: 11 })
t.teardown(() => stub.close())

const config = (tracing: string) => tracingConfig(origin, tracing)
const post = postChat

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
  const m = await metricsWhen(proxy, 'leaky_tracing_export_errors_total', 2)
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
  const m = await metricsWhen(proxy, 'leaky_tracing_export_errors_total', 1)
  // 200 spans against a queue of 16 with one export hanging: most of them are dropped, each one counted
  t.ok(metricValue(m, 'leaky_tracing_dropped_spans_total') >= 100, `dropped spans counted (${metricValue(m, 'leaky_tracing_dropped_spans_total')})`)
  t.equal(metricValue(m, 'leaky_tracing_exported_spans_total'), 0)
  t.ok(rx.requests >= 1, 'the export reached the collector, which never answered')
  const failing = await proxy.waitLog((l) => l.msg === 'tracing export failing; spans are dropped until it recovers')
  t.match(failing.error, /timeout|timed out/i)
})
