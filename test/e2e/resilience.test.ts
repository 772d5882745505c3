// Retries, fallback and the circuit breaker, end to end: the real proxy in front of real stubs, faults asked for
// with x-stub-* headers (sent by the client, or injected by an upstream's `headers`), and ports nothing listens on.
// Each request carries its own x-request-id, which the proxy forwards: the stubs' 'request' events say how many
// attempts reached them and when.
import t from 'tap'
import { request } from 'undici'
import net from 'node:net'
import OpenAI from 'openai'
import { startProxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { StubServer, type StubRequestEvent } from '../../src/stub/server.js'
import type { Exchange } from '../../src/stub/exchange.js'

/** The stub, failing the next `failNext` requests with its provider-shaped 503 (as `x-stub-error: 503` would). */
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

interface Seen {
  at: number
  ev: StubRequestEvent
}
function watch(s: StubServer): Seen[] {
  const log: Seen[] = []
  s.on('request', (ev: StubRequestEvent) => log.push({ at: performance.now(), ev }))
  return log
}
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

const { stub, origin } = await startStub({ seed: 3 })
const { stub: stub2, origin: origin2 } = await startStub({ seed: 4 })
const flaky = new FlakyStub({ seed: 5 })
const flakyOrigin = `http://127.0.0.1:${await flaky.listen(0, '127.0.0.1')}`
const seen1 = watch(stub)
const seen2 = watch(stub2)
const seenFlaky = watch(flaky)
const [dead1, dead2, dead3] = [await closedPort(), await closedPort(), await closedPort()]

const proxy = await startProxy(`listen: 127.0.0.1:0
workers: 1
drain_timeout: 2s
admin: { listen: 127.0.0.1:0 }
log: { level: info }
upstreams:
  flaky-llm:
    provider: openai
    targets: ["${flakyOrigin}"]
    retry: { attempts: 2, backoff: 10ms..20ms, on: [503] }
  flaky-plain:
    targets: ["${flakyOrigin}"]
    retry: { attempts: 2, backoff: 10ms..20ms, on: [503] }
  paced:
    targets: ["${origin}"]
    retry: { attempts: 2, backoff: 200ms..300ms, on: [503] }
  on429:
    targets: ["${origin}"]
    retry: { attempts: 1, backoff: 10ms..10ms, on: [429, 503] }
  not429:
    targets: ["${origin}"]
    retry: { attempts: 1, backoff: 10ms..10ms, on: [503] }
  stalls:
    targets: ["${origin}"]
    timeouts: { first_byte: 200ms }
    retry: { attempts: 1, backoff: 10ms..10ms, on: [timeout] }
  cutter:
    provider: openai
    targets: ["${origin}"]
    retry: { attempts: 2, backoff: 10ms..10ms, on: [reset, timeout, 502, 503] }
  rr:
    targets: ["http://127.0.0.1:${dead1}", "${origin}"]
    balance: round_robin
    retry: { attempts: 1, backoff: 10ms..10ms, on: [connect] }
  brk:
    targets: ["${origin}"]
    breaker: { failure_ratio: 0.5, min_requests: 3, window: 10s, cooldown: 1s }
  brk-fb:
    targets: ["${origin}"]
    headers: { x-stub-error: "500" }
    breaker: { failure_ratio: 0.5, min_requests: 2, window: 10s, cooldown: 30s }
    fallback: good
  good:
    targets: ["${origin2}"]
  a:
    targets: ["http://127.0.0.1:${dead2}"]
    fallback: b
  b:
    targets: ["http://127.0.0.1:${dead3}/base"]
    retry: { attempts: 1, backoff: 10ms..10ms }
    fallback: c
  c:
    targets: ["${origin2}"]
  openai-primary:
    provider: openai
    targets: ["${origin}"]
    headers: { x-stub-error: "503", authorization: "Bearer primary-secret" }
    fallback: openai-fallback
  openai-fallback:
    provider: openai
    targets: ["${origin2}"]
    headers: { authorization: "Bearer fallback-secret" }
routes:
  - { path: /fl/, upstream: flaky-llm, strip_prefix: true }
  - { path: /fp/, upstream: flaky-plain, strip_prefix: true }
  - { path: /paced/, upstream: paced, strip_prefix: true }
  - { path: /on429/, upstream: on429, strip_prefix: true }
  - { path: /not429/, upstream: not429, strip_prefix: true }
  - { path: /stalls/, upstream: stalls, strip_prefix: true }
  - { path: /cutter/, upstream: cutter, strip_prefix: true }
  - { path: /rr/, upstream: rr, strip_prefix: true }
  - { path: /brk/, upstream: brk, strip_prefix: true }
  - { path: /brk-fb/, upstream: brk-fb, strip_prefix: true }
  - { path: /chain/, upstream: a, strip_prefix: true }
  - { path: /sdk/, upstream: openai-primary, strip_prefix: true }
  - { path: /sdk-lim/, upstream: openai-primary, strip_prefix: true, limits: [primary-tokens] }
limits:
  primary-tokens: { per: upstream, tokens: 100000/day, burst: 100000 }
`)
t.teardown(async () => {
  await proxy.stop()
  await Promise.all([stub.close(), stub2.close(), flaky.close()])
})

let n = 0
const newId = () => `res-${process.pid}-${++n}`
const by = (log: Seen[], id: string) => log.filter((s) => s.ev.headers['x-request-id'] === id)
const accessOf = (id: string) => proxy.waitLog((l) => l.msg === 'access' && l.req_id === id)

async function get(path: string, headers: Record<string, string> = {}) {
  const id = newId()
  const res = await request(proxy.url(path), { headers: { 'x-request-id': id, ...headers } })
  const text = await res.body.text()
  return { id, status: res.statusCode, headers: res.headers, text }
}

async function chat(path: string, body: object, headers: Record<string, string> = {}) {
  const id = newId()
  const res = await request(proxy.url(path), {
    method: 'POST',
    headers: { 'x-request-id': id, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  return { id, status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

const metricsText = async () => (await request(`http://127.0.0.1:${proxy.adminPort}/metrics`)).body.text()

const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 8 }

t.test('a 503 is retried: the client gets the 2nd attempt\'s 200, the upstream saw the same body twice', async (t) => {
  flaky.failNext = 1
  const r = await chat('/fl/v1/chat/completions', CHAT)
  t.equal(r.status, 200)
  t.equal(JSON.parse(r.text).object, 'chat.completion')
  const attempts = by(seenFlaky, r.id)
  t.equal(attempts.length, 2, 'two attempts reached the upstream')
  t.same(attempts[1].ev.body, attempts[0].ev.body, 'the body was sent again, whole')
  t.equal(JSON.parse(attempts[1].ev.body.toString()).messages[0].content, 'hello there')
  const line = await accessOf(r.id)
  t.equal(line.status, 200)
  t.equal(line.error, null)
  t.match(line.detail, /attempt 1 \(flaky-llm\) failed: status 503/)
  t.equal(line.attempts, 2, 'the access line counts both attempts')
})

t.test('a bodyless request is retried; a body streamed through is not', async (t) => {
  flaky.failNext = 1
  const g = await get('/fp/__stub/health')
  t.equal(g.status, 200)
  t.equal(by(seenFlaky, g.id).length, 2)

  flaky.failNext = 1
  const id = newId()
  const res = await request(proxy.url('/fp/__stub/echo'), { method: 'POST', headers: { 'x-request-id': id }, body: Buffer.alloc(32 * 1024, 7) })
  const text = await res.body.text()
  t.equal(res.statusCode, 503, 'the upstream 503 reaches the client: the body cannot be sent again')
  t.match(text, /error/)
  t.equal(by(seenFlaky, id).length, 1, 'one attempt only')
  t.equal(flaky.failNext, 0)
})

t.test('backoff: retries wait between MIN and MAX (200ms..300ms), then the last 503 goes to the client', async (t) => {
  const r = await get('/paced/v1/models', { 'x-stub-error': '503' })
  t.equal(r.status, 503, 'retries exhausted, no fallback: the upstream answer is relayed')
  t.match(JSON.parse(r.text), { error: {} })
  const at = by(seen1, r.id).map((s) => s.at)
  t.equal(at.length, 3, '1 + attempts')
  for (let i = 1; i < at.length; i++) {
    const gap = at[i] - at[i - 1]
    // timers never fire early (2 ms for clock granularity); the upper slack covers a busy shared machine
    t.ok(gap >= 198, `gap ${i} ${gap.toFixed(1)} ms >= MIN`)
    t.ok(gap <= 300 + 150, `gap ${i} ${gap.toFixed(1)} ms <= MAX + slack`)
  }
  // every attempt is counted, the dropped ones too
  const m = await metricsText()
  t.match(m, /leaky_upstream_attempts_total\{upstream="paced"\} 3\n/)
  t.match(m, /leaky_upstream_errors_total\{upstream="paced",kind="5xx"\} 3\n/)
})

t.test('a client that leaves during the backoff gets no further attempt', async (t) => {
  const id = newId()
  const ac = new AbortController()
  const first = new Promise<void>((resolve) => {
    const on = (ev: StubRequestEvent) => {
      if (ev.headers['x-request-id'] !== id) return
      stub.off('request', on)
      // the 503 is on its way back; the proxy drops it and waits 200..300 ms: leave in that wait
      setTimeout(() => ac.abort(), 50)
      resolve()
    }
    stub.on('request', on)
  })
  const res = request(proxy.url('/paced/v1/models'), { headers: { 'x-request-id': id, 'x-stub-error': '503' }, signal: ac.signal })
  await first
  await t.rejects(res)
  const line = await accessOf(id)
  t.equal(line.status, 499)
  t.equal(line.error, 'LEAKY_CLIENT_CLOSED')
  // nothing to await for an attempt that must not happen: give the backoff (MAX 300 ms) time to have fired
  await new Promise((r) => setTimeout(r, 400))
  t.equal(by(seen1, id).length, 1)
})

t.test('429 is retried only where retry.on lists it', async (t) => {
  const yes = await get('/on429/v1/models', { 'x-stub-error': '429' })
  t.equal(yes.status, 429)
  t.equal(by(seen1, yes.id).length, 2)
  const no = await get('/not429/v1/models', { 'x-stub-error': '429' })
  t.equal(no.status, 429)
  t.equal(by(seen1, no.id).length, 1)
  t.equal(yes.headers['retry-after'], '1', 'the upstream\'s own headers come through on the last attempt')
})

t.test('a first-byte timeout is retried when listed, then answered 504', async (t) => {
  const r = await get('/stalls/v1/models', { 'x-stub-ttft-ms': '5000' })
  t.equal(r.status, 504)
  t.equal(JSON.parse(r.text).error.code, 'LEAKY_UPSTREAM_TIMEOUT')
  t.equal(by(seen1, r.id).length, 2)
})

t.test('no retry once bytes reached the client: a stream cut mid-way stays a cut', async (t) => {
  const r = await chat('/cutter/v1/chat/completions', { ...CHAT, max_tokens: 40, stream: true }, { 'x-stub-error': 'cut' })
  t.equal(r.status, 200, 'the status had gone out before the cut')
  t.match(r.text, /^data: /, 'some events reached the client')
  t.match(r.text, /event: error/, 'the stream ends with an error event, not a second answer')
  t.equal(by(seen1, r.id).length, 1, 'one attempt')
})

t.test('a connect error goes to the next target of the pool', async (t) => {
  const a = await get('/rr/__stub/health')
  const b = await get('/rr/__stub/health')
  t.equal(a.status, 200)
  t.equal(b.status, 200)
  t.equal(by(seen1, a.id).length + by(seen1, b.id).length, 2, 'each reached the live target once')
  const details = [(await accessOf(a.id)).detail, (await accessOf(b.id)).detail]
  t.equal(details.filter((d) => typeof d === 'string' && /attempt 1 \(rr\) failed: .*ECONNREFUSED/.test(d)).length, 1,
    'exactly one of the two started on the dead target (round-robin) and says so')
})

t.test('breaker: opens after min_requests failures → 503 LEAKY_UPSTREAM_UNAVAILABLE; a trial after cooldown closes it', async (t) => {
  for (let i = 0; i < 3; i++) t.equal((await get('/brk/v1/models', { 'x-stub-error': '500' })).status, 500)
  const open = await proxy.waitLog((l) => l.msg === 'breaker open' && l.upstream === 'brk')
  t.match(open, { requests: 3, failures: 3, cooldown_ms: 1000 })
  const gauge = await metricsText()
  t.match(gauge, /leaky_upstream_breaker_open\{upstream="brk"\} 1/)

  const refused = await get('/brk/v1/models')
  t.equal(refused.status, 503)
  t.equal(JSON.parse(refused.text).error.code, 'LEAKY_UPSTREAM_UNAVAILABLE')
  t.equal(refused.headers['retry-after'], '1', 'seconds left of the cooldown')
  t.equal(by(seen1, refused.id).length, 0, 'the upstream never saw it')
  t.equal((await accessOf(refused.id)).error, 'LEAKY_UPSTREAM_UNAVAILABLE')

  // the cooldown is time itself: wait what Retry-After announced; the trial fails and reopens the breaker
  await new Promise((r) => setTimeout(r, 1000))
  const trial = await get('/brk/v1/models', { 'x-stub-error': '500' })
  t.equal(trial.status, 500, 'the trial went through')
  await proxy.waitLog((l) => l.msg === 'breaker open' && l.upstream === 'brk' && l.trial === 'failed')
  t.equal((await get('/brk/v1/models')).status, 503, 'open again')

  await new Promise((r) => setTimeout(r, 1000))
  const ok = await get('/brk/v1/models')
  t.equal(ok.status, 200, 'a successful trial')
  const closed = await proxy.waitLog((l) => l.msg === 'breaker closed' && l.upstream === 'brk')
  t.ok((closed.open_ms as number) >= 1000)
  t.equal((await get('/brk/v1/models')).status, 200, 'closed: requests flow again')
  const after = await metricsText()
  t.match(after, /leaky_upstream_breaker_open\{upstream="brk"\} 0/)
  t.equal(proxy.lines.filter((l) => l.msg === 'breaker open' && l.upstream === 'brk').length, 2, 'one line per transition')
})

t.test('breaker open with a fallback: requests go to the fallback instead', async (t) => {
  for (let i = 0; i < 2; i++) t.equal((await get('/brk-fb/v1/models')).status, 500, '500 is not a failover condition by default')
  await proxy.waitLog((l) => l.msg === 'breaker open' && l.upstream === 'brk-fb')
  const r = await get('/brk-fb/v1/models')
  t.equal(r.status, 200)
  t.equal(by(seen1, r.id).length, 0, 'the primary never saw it')
  const fb = by(seen2, r.id)
  t.equal(fb.length, 1)
  t.equal(fb[0].ev.headers['x-stub-error'], undefined, 'the primary\'s injected headers stay with the primary')
  t.equal((await accessOf(r.id)).upstream, 'good', 'the access line names the upstream that answered')
})

t.test('fallback chain a → b → c when a and b refuse connections', async (t) => {
  const r = await get('/chain/v1/models')
  t.equal(r.status, 200)
  t.equal(JSON.parse(r.text).object, 'list')
  const hit = by(seen2, r.id)
  t.equal(hit.length, 1)
  t.equal(hit[0].ev.url, '/v1/models', 'each hop applies its own base path (b\'s /base is not carried to c)')
  const line = await accessOf(r.id)
  t.equal(line.upstream, 'c')
  t.equal(line.status, 200)
  t.match(line.detail, /attempt 3 \(b\) failed: .*ECONNREFUSED/, 'a once, b twice (its own retry), then c')
})

t.test('the openai SDK gets its answer from the fallback when the primary answers 503', async (t) => {
  const client = new OpenAI({ apiKey: 'sk-client', baseURL: proxy.url('/sdk/v1'), maxRetries: 0 })
  const before1 = seen1.length
  const before2 = seen2.length
  const r = await client.chat.completions.create({ ...CHAT, messages: [{ role: 'user', content: 'Say hello' }] })
  t.equal(r.object, 'chat.completion')
  t.ok((r.choices[0].message.content ?? '').length > 0)
  t.ok((r.usage?.completion_tokens ?? 0) > 0)
  const primary = seen1.slice(before1)
  const fallback = seen2.slice(before2)
  t.equal(primary.length, 1, 'the primary was asked once')
  t.equal(primary[0].ev.headers.authorization, 'Bearer primary-secret')
  t.equal(fallback.length, 1)
  t.equal(fallback[0].ev.headers.authorization, 'Bearer fallback-secret', 'the fallback\'s own credentials, and only them')
  t.equal(fallback[0].ev.headers['x-stub-error'], undefined)

  const stream = await client.chat.completions.create({ ...CHAT, stream: true, stream_options: { include_usage: true } })
  let text = ''
  for await (const c of stream) text += c.choices[0]?.delta?.content ?? ''
  t.ok(text.length > 0, 'a stream from the fallback too')
})

t.test('a per: upstream token limit is charged and reconciled on the route\'s upstream when the fallback answered', async (t) => {
  const client = new OpenAI({ apiKey: 'sk-client', baseURL: proxy.url('/sdk-lim/v1'), maxRetries: 0 })
  // 500 tokens asked, 5 used: the estimate is far above the usage, so a refund applied to the wrong bucket shows
  const first = await client.chat.completions.create({ ...CHAT, max_tokens: 500 }, { headers: { 'x-stub-tokens': '5' } })
  const used = first.usage!.total_tokens
  const id = newId()
  const { response } = await client.chat.completions
    .create({ ...CHAT, max_tokens: 500 }, { headers: { 'x-stub-tokens': '5', 'x-request-id': id } })
    .withResponse()
  const line = await accessOf(id)
  t.equal(line.upstream, 'openai-fallback')
  const estimate = line.tokens_estimate as number
  const remaining = Number(response.headers.get('x-ratelimit-remaining-tokens'))
  // 100k/day drains ~1.2 tokens/s: a few tokens of slack, far below the 495 a lost refund would leave
  t.ok(Math.abs(remaining - (100_000 - used - estimate)) <= 3,
    `remaining ${remaining} = 100000 - ${used} used by the first request - ${estimate} pre-charged for this one`)
})
