// Tracing micro-benchmark (issue 20): what tracing costs a worker per request, and whether each worker should run
// its own OpenTelemetry SDK exporter or hand finished span data to the generation's main thread (the design in
// src/tracing/). Plain node on dist/ (npm run build first); single thread, best of REPEAT runs of N iterations each,
// so a busy machine inflates less than a throughput bench.
//   node bench/micro/tracing.mjs            (~10 s; N=20000 REPEAT=5)
// Cases (µs per request, or per span):
//   decide            the head decision for one request (sampler.ts), what every request pays with tracing on
//   build             SpanData for one sampled request: SERVER span + 1 attempt (spans.ts), worker side
//   handoff           structured clone of those spans in a batch of 64 (what postMessage copies), worker side
//   receive           the same batch read back on the main thread (its side of the hand-off)
//   sdk-serialise     ReadableSpan + OTLP protobuf serialisation of the same spans: what a worker would do on
//                     top of `build` with its own exporter (the HTTP send not included)
//   json              JSON.stringify of the same batch, the other way to hand spans over (for comparison)
// and the heap a thread holds once it has loaded the SDK exporter, measured in a fresh worker thread.
import { Worker } from 'node:worker_threads'
import { createRequire } from 'node:module'
import { serialize, deserialize } from 'node:v8'
import { sampled, compileSampler } from '../../dist/tracing/sampler.js'
import { requestSpans } from '../../dist/tracing/spans.js'
import { TraceRecord, AttemptRecord } from '../../dist/tracing/record.js'
import { toReadable } from '../../dist/tracing/readable.js'
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { resourceFromAttributes } from '@opentelemetry/resources'

const N = Number(process.env.N ?? 20000)
const REPEAT = Number(process.env.REPEAT ?? 5)

function best(fn, n = N) {
  let min = Infinity
  for (let r = 0; r < REPEAT; r++) {
    const t0 = process.cpuUsage()
    fn(n)
    const d = process.cpuUsage(t0)
    min = Math.min(min, (d.user + d.system) / n)
  }
  return min
}

const hex = (k) => Array.from({ length: k }, () => Math.floor(Math.random() * 16).toString(16)).join('')
const ids = Array.from({ length: 4096 }, () => hex(32))
const upstream = { name: 'llm', provider: 'openai', targets: [{ origin: 'http://127.0.0.1:8081' }] }
const plan = { tracing: { sampler: compileSampler({ sample: 0.01 }, {}), sampleDenied: false }, upstreams: new Map([['llm', upstream]]) }
function state(i) {
  const t0 = performance.now() - 5
  const trace = new TraceRecord()
  trace.limitAt = t0 + 0.1
  trace.attempts.push(new AttemptRecord(hex(16), 'llm', 'http://127.0.0.1:8081', t0 + 0.2, false))
  return {
    plan, method: 'POST', url: '/v1/chat/completions', host: '127.0.0.1:8080', clientIp: '127.0.0.1', requestId: hex(24),
    traceId: ids[i & 4095], spanId: hex(16), parentSpanId: hex(16), traceState: '', sampled: true, trace, attemptAt: t0 + 0.2,
    startMs: t0, ttfbMs: 2, bytesIn: 1100, bytesOut: 700, status: 200, route: { path: '/v1/', upstream }, upstream, target: 0,
    keyId: 'team-a', limitDenied: '', errorCode: null, attempts: 1, shape: 'openai-chat', model: 'gpt-4o-mini',
    charged: true, cluster: null,
  }
}
const usage = { prompt: 300, completion: 16, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 316, model: 'gpt-4o-mini-2024-07-18', source: 'reported' }
const states = Array.from({ length: 512 }, (_, i) => state(i))
const end = performance.now()

const sp = plan.tracing.sampler
let sink = 0
const decide = best((n) => {
  for (let i = 0; i < n; i++) if (sampled(sp, ids[i & 4095], -1)) sink++
}, N * 20)
const build = best((n) => {
  for (let i = 0; i < n; i++) sink += requestSpans(states[i & 511], 200, usage, end, '').length
})
const spans = []
for (let i = 0; i < 64; i += 2) spans.push(...requestSpans(states[i], 200, usage, end, ''))
const handoff = best((n) => {
  for (let i = 0; i < n; i += 32) sink += serialize({ type: 'spans', spans, invalid: 0 }).length
}) // per request (2 spans): 32 requests per batch of 64 spans
const cloned = serialize({ type: 'spans', spans, invalid: 0 })
const receive = best((n) => {
  for (let i = 0; i < n; i += 32) sink += deserialize(cloned).spans.length
}) // the main thread's side of the hand-off
const scope = { resource: resourceFromAttributes({ 'service.name': 'leaky-tokens' }), scope: { name: 'leaky-tokens', version: '0' } }
const sdk = best((n) => {
  for (let i = 0; i < n; i += 32) sink += ProtobufTraceSerializer.serializeRequest(spans.map((d) => toReadable(d, scope))).length
})

// heap of a thread that loads the exporter, against one that does not
const require_ = (m) => createRequire(import.meta.url).resolve(m)
async function heapOf(withSdk) {
  const code = `
    const { parentPort } = require('node:worker_threads')
    require('node:v8').setFlagsFromString('--expose-gc')
    const collect = require('node:vm').runInNewContext('gc')
    if (${withSdk}) { require(${JSON.stringify(require_('@opentelemetry/exporter-trace-otlp-proto'))}); require(${JSON.stringify(require_('@opentelemetry/resources'))}) }
    collect(); collect()
    parentPort.postMessage(process.memoryUsage().heapUsed)`
  const w = new Worker(code, { eval: true })
  const [v] = await Promise.all([new Promise((r) => w.once('message', r))])
  await w.terminate()
  return v
}
const h0 = Math.min(await heapOf(false), await heapOf(false))
const h1 = Math.min(await heapOf(true), await heapOf(true))

const f = (x) => x.toFixed(2).padStart(7)
console.log(`decide         ${f(decide)} µs per request (every request, tracing on)`)
console.log(`build          ${f(build)} µs per sampled request (2 spans)`)
console.log(`handoff        ${f(handoff)} µs per sampled request (structured clone, batches of 64 spans)`)
console.log(`receive        ${f(receive)} µs per sampled request (structured clone read back on the main thread)`)
console.log(`sdk-serialise  ${f(sdk)} µs per sampled request (ReadableSpan + OTLP protobuf; a per-worker exporter pays this in the worker)`)
console.log(`exporter heap  ${((h1 - h0) / 1048576).toFixed(1)} MiB per thread that loads @opentelemetry/exporter-trace-otlp-proto`)
console.log(`worker cost per request at 1 %: ${f(decide + 0.01 * (build + handoff))} µs (hand-off) vs ${f(decide + 0.01 * (build + sdk))} µs (+ HTTP send) per-worker SDK`)
console.log(`worker cost per request at 100 %: ${f(decide + build + handoff)} µs (hand-off) vs ${f(decide + build + sdk)} µs (+ HTTP send) per-worker SDK`)
console.log(`process cost per request at 100 %: ${f(decide + build + handoff + receive + sdk)} µs (hand-off) vs ${f(decide + build + sdk)} µs (+ HTTP send) per-worker SDK`)
if (sink === -1) console.log('')
const json = best((n) => {
  for (let i = 0; i < n; i += 32) sink += JSON.stringify(spans).length
})
console.log(`json           ${f(json)} µs per sampled request (JSON.stringify of the batch, for comparison)`)
