// OpenTelemetry spans end to end: the real proxy exports to a real OTLP/HTTP receiver in this process (protobuf
// decoded with the official opentelemetry-proto definitions), in front of real stub upstreams. Spans must arrive
// with the right parent, attributes and timings for a JSON answer, an SSE stream, a 429, a retry and a fallback;
// a request that is neither sampled nor failing exports nothing; a malformed traceparent starts a new trace and is
// counted; a reload changes the sampling without a restart.
import t from 'tap'
import { request } from 'undici'
import net from 'node:net'
import { writeFileSync } from 'node:fs'
import { startProxy, writeConfig } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { OtlpReceiver, metricsWhen, type ReceivedSpan } from '../helpers/otlp.js'
import { StubServer, type StubRequestEvent } from '../../src/stub/server.js'
import type { Exchange } from '../../src/stub/exchange.js'

/** The stub, failing the next `failNext` requests with its provider-shaped 503. */
class FlakyStub extends StubServer {
  failNext = 0
  override received(ex: Exchange): void {
    if (this.failNext > 0) {
      this.failNext--
      ex.req.headers['x-stub-error'] = '503'
    }
    super.received(ex)
  }
}

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

const SECRET = 'sk-client-secret-7f3a9'
const UPSTREAM_SECRET = 'sk-upstream-secret-c41d'
const PROMPT = 'the prompt text must never reach a span'

const rx = new OtlpReceiver()
await rx.listen()
const { stub, origin } = await startStub({ seed: 7 })
const seen: StubRequestEvent[] = []
stub.on('request', (ev: StubRequestEvent) => seen.push(ev))
const flaky = new FlakyStub({ seed: 8 })
const flakyOrigin = `http://127.0.0.1:${await flaky.listen(0, '127.0.0.1')}`
const dead = await closedPort()

const config = (tracing: string) => `listen: 127.0.0.1:0
workers: 1
drain_timeout: 2s
admin: { listen: 127.0.0.1:0 }
log: { level: info }
tracing: ${tracing}
limits:
  tiny: { per: route, requests: 1/min, burst: 1 }
keys:
  - { id: team-a, key: ${SECRET} }
upstreams:
  llm:
    provider: openai
    targets: ["${origin}"]
    headers: { authorization: "Bearer ${UPSTREAM_SECRET}" }
  flaky:
    provider: openai
    targets: ["${flakyOrigin}"]
    retry: { attempts: 1, backoff: 10ms..10ms, on: [503] }
  gone:
    provider: openai
    targets: ["http://127.0.0.1:${dead}"]
    fallback: llm
  brk:
    provider: openai
    targets: ["http://127.0.0.1:${dead}"]
    breaker: { failure_ratio: 0.5, min_requests: 2, window: 10s, cooldown: 60s }
    fallback: llm
routes:
  - { path: /v1/, upstream: llm, auth: key }
  - { path: /flaky/, strip_prefix: true, upstream: flaky }
  - { path: /gone/, strip_prefix: true, upstream: gone }
  - { path: /deny/, strip_prefix: true, upstream: llm, limits: [tiny] }
  - { path: /brk/, strip_prefix: true, upstream: brk }
`
const ALL = `{ endpoint: "${rx.endpoint}", sample: 1, service_name: leaky-test, headers: { x-collector-token: tok-1 } }`
const file = writeConfig(config(ALL))
const proxy = await startProxy(file)
t.teardown(async () => {
  await proxy.stop()
  await rx.close()
  await stub.close()
  await flaky.close()
})

let n = 0
async function chat(path: string, opts: { stream?: boolean; headers?: Record<string, string> } = {}) {
  const id = `req-${++n}`
  const res = await request(proxy.url(path), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id, authorization: `Bearer ${SECRET}`, ...opts.headers },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }], stream: opts.stream === true }),
  })
  const body = await res.body.text()
  return { id, status: res.statusCode, body, traceparent: opts.headers?.traceparent }
}

function serverSpan(id: string): ReceivedSpan | undefined {
  return rx.spans.find((s) => s.kind === 2 && (s.attrs['http.request.header.x-request-id'] as string[] | undefined)?.[0] === id)
}
async function spansOf(id: string, count: number): Promise<{ server: ReceivedSpan; children: ReceivedSpan[] }> {
  await rx.until(() => {
    const s = serverSpan(id)
    return s !== undefined && rx.trace(s.traceId).length >= count
  })
  const server = serverSpan(id)!
  const children = rx.trace(server.traceId).filter((s) => s.parentSpanId === server.spanId)
  children.sort((a, b) => Number(a.attrs['leaky.attempt']) - Number(b.attrs['leaky.attempt']))
  return { server, children }
}
function noSecrets(t: Tap.Test, spans: ReceivedSpan[]): void {
  const text = JSON.stringify(spans, (_k, v) => (typeof v === 'bigint' ? String(v) : v))
  t.notOk(text.includes(SECRET), 'no client key in any span')
  t.notOk(text.includes(UPSTREAM_SECRET), 'no upstream credential in any span')
  t.notOk(text.includes(PROMPT), 'no prompt text in any span')
}

t.test('JSON answer: server span continues the client trace, one client span per attempt, GenAI attributes', async (t) => {
  const parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
  const before = performance.timeOrigin + performance.now()
  const r = await chat('/v1/chat/completions', { headers: { traceparent: parent, tracestate: 'vendor=abc' } })
  const after = performance.timeOrigin + performance.now()
  t.equal(r.status, 200)
  const { server, children } = await spansOf(r.id, 2)
  t.equal(server.traceId, '0af7651916cd43dd8448eb211c80319c', 'the client trace continues')
  t.equal(server.parentSpanId, 'b7ad6b7169203331', 'child of the client span')
  t.equal(server.traceState, 'vendor=abc', 'tracestate carried')
  t.equal(server.name, 'POST /v1/')
  t.equal(server.resource['service.name'], 'leaky-test')
  t.equal(server.scope, 'leaky-tokens')
  t.match(server.attrs, {
    'http.request.method': 'POST', 'http.route': '/v1/', 'url.path': '/v1/chat/completions', 'http.response.status_code': 200,
    'leaky.key_id': 'team-a', 'leaky.upstream': 'llm', 'gen_ai.system': 'openai', 'gen_ai.operation.name': 'chat',
    'gen_ai.request.model': 'gpt-4o-mini', 'client.address': '127.0.0.1',
  })
  t.ok(typeof server.attrs['gen_ai.response.model'] === 'string' && server.attrs['gen_ai.response.model'] !== '', 'response model')
  t.ok((server.attrs['gen_ai.usage.input_tokens'] as number) > 0, 'input tokens')
  t.ok((server.attrs['gen_ai.usage.output_tokens'] as number) > 0, 'output tokens')
  t.same(server.attrs['gen_ai.response.finish_reasons'], ['stop'], 'finish reason from the answer')
  // gpt-4o-mini at the shipped 0.15 / 0.60 USD per 1 M tokens
  const cost = ((server.attrs['gen_ai.usage.input_tokens'] as number) * 0.15 + (server.attrs['gen_ai.usage.output_tokens'] as number) * 0.6) / 1e6
  t.ok(Math.abs((server.attrs['leaky.cost_usd'] as number) - cost) < 1e-12, `leaky.cost_usd ${server.attrs['leaky.cost_usd']} = ${cost}`)
  t.equal(server.status.code, 0, 'status unset on success')
  // timings: inside the client's own window, first byte and end of stream in order
  t.ok(Number(server.startNs) / 1e6 >= before - 5 && Number(server.endNs) / 1e6 <= after + 5, 'span inside the request window')
  const ev = Object.fromEntries(server.events.map((e) => [e.name, e]))
  t.ok(ev['leaky.first_byte'] && ev['leaky.stream.end'], 'first byte and end of stream events')
  t.ok(server.startNs <= ev['leaky.first_byte'].timeNs && ev['leaky.first_byte'].timeNs <= ev['leaky.stream.end'].timeNs, 'events in order')
  t.ok(ev['leaky.stream.end'].timeNs <= server.endNs)

  t.equal(children.length, 1, 'one attempt')
  const a = children[0]
  t.equal(a.kind, 3, 'CLIENT span')
  t.equal(a.traceId, server.traceId)
  t.match(a.attrs, { 'leaky.upstream': 'llm', 'leaky.attempt': 1, 'server.address': '127.0.0.1', 'http.response.status_code': 200, 'gen_ai.request.model': 'gpt-4o-mini' })
  t.ok(a.startNs >= server.startNs && a.endNs <= server.endNs, 'attempt inside the server span')
  // the upstream saw the attempt span as its parent, sampled
  const up = seen.find((e) => e.headers['x-request-id'] === r.id)!
  t.equal(up.headers.traceparent, `00-${server.traceId}-${a.spanId}-01`, 'upstream parent is the attempt span')
  t.equal(up.headers.tracestate, 'vendor=abc', 'tracestate forwarded unchanged')
  t.equal(rx.headers.at(-1)!['x-collector-token'], 'tok-1', 'configured export headers sent')
  t.ok(rx.contentTypes.has('application/x-protobuf'), 'OTLP/HTTP protobuf')
  noSecrets(t, [server, ...children])
})

t.test('SSE stream: first byte before the end of the stream, usage from the stream', async (t) => {
  const r = await chat(`/v1/chat/completions?trace=1&key=${SECRET}`, { stream: true })
  t.equal(r.status, 200)
  t.match(r.body, /data: \[DONE\]/)
  const { server, children } = await spansOf(r.id, 2)
  t.equal(server.parentSpanId, '', 'a trace the proxy started: root span')
  t.equal(server.attrs['url.path'], '/v1/chat/completions', 'the path only: a query string may carry a key')
  t.ok((server.attrs['gen_ai.usage.output_tokens'] as number) > 0, 'output tokens read from the stream')
  t.same(server.attrs['gen_ai.response.finish_reasons'], ['stop'], 'finish reason from the stream')
  const fb = server.events.find((e) => e.name === 'leaky.first_byte')!
  const end = server.events.find((e) => e.name === 'leaky.stream.end')!
  t.ok(fb.timeNs < end.timeNs, 'first byte strictly before the end of the stream')
  t.equal(children.length, 1)
  noSecrets(t, [server, ...children])
})

t.test('retry: two attempts, the first one 503 with its reason', async (t) => {
  flaky.failNext = 1
  const r = await chat('/flaky/v1/chat/completions')
  t.equal(r.status, 200)
  const { server, children } = await spansOf(r.id, 3)
  t.equal(server.attrs['leaky.attempts'], 2)
  t.equal(children.length, 2, 'one span per attempt')
  t.match(children[0].attrs, { 'leaky.attempt': 1, 'http.response.status_code': 503, 'leaky.retry_reason': 'status', 'error.type': '503' })
  t.equal(children[0].status.code, 2, 'failed attempt: status error')
  t.match(children[1].attrs, { 'leaky.attempt': 2, 'http.response.status_code': 200 })
  t.notOk('error.type' in children[1].attrs)
  t.ok(children[0].endNs <= children[1].startNs, 'the retry starts after the first attempt ended')
})

t.test('malformed traceparent: a new trace, counted, never an error', async (t) => {
  const r = await chat('/v1/chat/completions', { headers: { traceparent: '00-zzzz-not-a-trace-01' } })
  t.equal(r.status, 200)
  const { server } = await spansOf(r.id, 2)
  t.equal(server.parentSpanId, '', 'root of a new trace')
  t.match(server.traceId, /^[0-9a-f]{32}$/)
  // an all-zero parent span id is invalid too (W3C): not continued
  const z = await chat('/v1/chat/completions', { headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01' } })
  t.equal(z.status, 200)
  const { server: zs } = await spansOf(z.id, 2)
  t.not(zs.traceId, '0af7651916cd43dd8448eb211c80319c', 'a new trace')
  t.equal(zs.parentSpanId, '')
  await t.resolves(metricsWhen(proxy, 'leaky_tracing_invalid_traceparent_total', 2), 'both counted')
})

t.test('reload to sample 0: only tail signals export — 429 (sample_denied), fallback after a failed upstream', async (t) => {
  writeFileSync(file, config(`{ endpoint: "${rx.endpoint}", sample: 0, sample_denied: true, service_name: leaky-test }`))
  const reloads = proxy.lines.filter((l) => l.msg === 'reloaded').length
  process.kill(proxy.child.pid!, 'SIGHUP')
  await proxy.waitLog((l) => l.msg === 'reloaded' && proxy.lines.filter((x) => x.msg === 'reloaded').length > reloads)

  // not sampled, succeeded: nothing may be exported for it
  const quiet = await chat('/v1/chat/completions')
  const sampledFlag = seen.find((e) => e.headers['x-request-id'] === quiet.id)!.headers.traceparent as string
  t.match(sampledFlag, /-00$/, 'the upstream is told the trace is not sampled')

  const ok = await chat('/deny/v1/chat/completions')
  t.equal(ok.status, 200)
  const denied = await chat('/deny/v1/chat/completions')
  t.equal(denied.status, 429)
  const { server: d } = await spansOf(denied.id, 1)
  t.match(d.attrs, { 'http.response.status_code': 429, 'leaky.limit': 'tiny', 'leaky.trace.tail': 'denied', 'leaky.error': 'LEAKY_RATE_LIMITED' })
  t.equal(d.status.code, 0, 'a 429 is the client\'s, not a server error')
  const lim = d.events.find((e) => e.name === 'leaky.limit')!
  t.match(lim.attrs, { 'leaky.limit.decision': 'denied', 'leaky.limit': 'tiny', 'leaky.limit.scope': 'local', 'leaky.limit.waited': false })

  const fb = await chat('/gone/v1/chat/completions')
  t.equal(fb.status, 200, 'the fallback answered')
  const { server, children } = await spansOf(fb.id, 3)
  t.equal(server.attrs['leaky.trace.tail'], 'attempt_failed', 'exported though not sampled')
  t.equal(children.length, 2)
  t.match(children[0].attrs, { 'leaky.upstream': 'gone', 'leaky.retry_reason': 'LEAKY_UPSTREAM_CONNECT', 'server.port': dead })
  t.equal(children[0].status.code, 2)
  t.match(children[1].attrs, { 'leaky.upstream': 'llm', 'http.response.status_code': 200 })

  // an open breaker passes its upstream over: the fallback answers, and the trace says why
  t.equal((await chat('/brk/v1/chat/completions')).status, 200)
  t.equal((await chat('/brk/v1/chat/completions')).status, 200)
  await proxy.waitLog((l) => l.msg === 'breaker open' && l.upstream === 'brk')
  const skipped = await chat('/brk/v1/chat/completions')
  t.equal(skipped.status, 200)
  const { server: b, children: bc } = await spansOf(skipped.id, 2)
  t.equal(b.attrs['leaky.trace.tail'], 'breaker_open', 'exported though not sampled')
  t.match(b.events.find((e) => e.name === 'leaky.breaker.open')?.attrs, { 'leaky.upstream': 'brk' }, 'the skipped upstream, as an event')
  t.same(bc.map((c) => c.attrs['leaky.upstream']), ['llm'], 'one attempt: the fallback')

  // everything the one worker exported after `quiet` has arrived by now (batches keep their order)
  t.equal(serverSpan(quiet.id), undefined, 'an unsampled success exports nothing')
  t.equal(serverSpan(ok.id), undefined)
})
