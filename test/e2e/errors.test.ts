// Every error status the data plane answers itself, in the OpenAI error shape, plus header rewriting — against a
// real stub upstream that records what it received.
import t from 'tap'
import { request } from 'undici'
import net from 'node:net'
import { startProxy, baseConfig } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { rawExchange } from '../helpers/raw.js'

const { stub, origin } = await startStub({ seed: 7 })
// a port nothing listens on: bind, note, close
const dead = await new Promise<number>((r) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as net.AddressInfo).port
    s.close(() => r(p))
  })
})
const proxy = await startProxy(
  baseConfig(`server: { max_body: 64kb, max_header: 8kb }
upstreams:
  plain: { targets: ["${origin}"] }
  keyed:
    provider: openai
    targets: ["${origin}"]
    headers: { authorization: "Bearer upstream-secret" }
  dead: { targets: ["http://127.0.0.1:${dead}"] }
  slow: { targets: ["${origin}"], timeouts: { first_byte: 300ms } }
routes:
  - { path: /plain/, upstream: plain, strip_prefix: true }
  - { path: /keyed/, upstream: keyed, strip_prefix: true }
  - { path: /dead/, upstream: dead }
  - { path: /slow/, upstream: slow, strip_prefix: true }
`),
)
t.teardown(async () => {
  await proxy.stop()
  await stub.close()
})

function nextUpstreamRequest(): Promise<{ method: string; url: string; headers: Record<string, string | string[]>; body: Buffer }> {
  return new Promise((resolve) => stub.once('request', resolve))
}

async function errorOf(res: Awaited<ReturnType<typeof request>>) {
  const body = (await res.body.json()) as { error: { message: string; type: string; code: string } }
  return body.error
}

t.test('404 when no route matches', async (t) => {
  const res = await request(proxy.url('/nothing/here'))
  t.equal(res.statusCode, 404)
  t.equal(res.headers['content-type'], 'application/json')
  const e = await errorOf(res)
  t.equal(e.code, 'LEAKY_NO_ROUTE')
  t.type(e.message, 'string')
  t.ok(res.headers['x-request-id'], 'x-request-id on errors too')
})

t.test('413 on Content-Length over max_body, before reading the body', async (t) => {
  const res = await request(proxy.url('/plain/__stub/echo'), { method: 'POST', body: Buffer.alloc(70 * 1024, 1) })
  t.equal(res.statusCode, 413)
  t.equal((await errorOf(res)).code, 'LEAKY_BODY_TOO_LARGE')
})

t.test('413 while streaming a chunked body past max_body', async (t) => {
  async function* gen() {
    for (let i = 0; i < 20; i++) yield Buffer.alloc(8 * 1024, 2)
  }
  const res = await request(proxy.url('/plain/__stub/echo'), { method: 'POST', body: gen() })
  t.equal(res.statusCode, 413)
  t.equal((await errorOf(res)).code, 'LEAKY_BODY_TOO_LARGE')
})

t.test('431 when headers exceed max_header', async (t) => {
  const headers: Record<string, string> = {}
  for (let i = 0; i < 40; i++) headers[`x-pad-${i}`] = 'v'.repeat(250)
  const res = await request(proxy.url('/plain/__stub/echo'), { headers })
  t.equal(res.statusCode, 431)
  t.equal((await errorOf(res)).code, 'LEAKY_HEADERS_TOO_LARGE')
})

t.test('400 on duplicate Content-Length, and the connection is closed', async (t) => {
  const r = await rawExchange(proxy.port, 'POST /plain/__stub/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 10\r\n\r\nabcdGET /plain/__stub/echo HTTP/1.1\r\nHost: x\r\n\r\n')
  t.match(r.data, /^HTTP\/1\.1 400 /)
  t.match(r.data, /LEAKY_DUPLICATE_CONTENT_LENGTH/)
  t.equal(r.data.match(/HTTP\/1\.1/g)?.length, 1, 'the smuggled second request is never answered')
  t.ok(r.closed, 'closed')
})

t.test('400 on a Transfer-Encoding other than chunked', async (t) => {
  const r = await rawExchange(proxy.port, 'POST /plain/__stub/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n')
  t.match(r.data, /^HTTP\/1\.1 400 /)
  t.match(r.data, /LEAKY_BAD_TRANSFER_ENCODING/)
})

t.test('502 when the upstream refuses the connection', async (t) => {
  const res = await request(proxy.url('/dead/x'))
  t.equal(res.statusCode, 502)
  t.equal((await errorOf(res)).code, 'LEAKY_UPSTREAM_CONNECT')
})

t.test('502 when the upstream resets the connection', async (t) => {
  const res = await request(proxy.url('/plain/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-error': 'reset' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] }),
  })
  t.equal(res.statusCode, 502)
  t.equal((await errorOf(res)).code, 'LEAKY_UPSTREAM_RESET')
})

t.test('504 when the first byte takes longer than first_byte', async (t) => {
  const res = await request(proxy.url('/slow/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-ttft-ms': '2000' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] }),
  })
  t.equal(res.statusCode, 504)
  t.equal((await errorOf(res)).code, 'LEAKY_UPSTREAM_TIMEOUT')
})

t.test('upstream 429/500 pass through unchanged', async (t) => {
  const res = await request(proxy.url('/plain/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-error': '429' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] }),
  })
  t.equal(res.statusCode, 429)
  t.equal(res.headers['retry-after'], '1')
  await res.body.dump()
})

t.test('hop-by-hop headers removed, X-Forwarded-* set, request id and trace continued', async (t) => {
  const seen = nextUpstreamRequest()
  const res = await request(proxy.url('/plain/__stub/echo?a=1'), {
    headers: {
      'proxy-authorization': 'Basic abc',
      'x-forwarded-for': '6.6.6.6',
      'x-request-id': 'req-123',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      'x-custom': 'kept',
      host: 'client.example',
    },
  })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-request-id'], 'req-123')
  await res.body.dump()
  const up = await seen
  t.equal(up.url, '/__stub/echo?a=1', 'prefix stripped, query kept')
  for (const h of ['proxy-authorization', 'transfer-encoding', 'upgrade']) t.notOk(up.headers[h], `${h} removed`)
  t.equal(up.headers['x-custom'], 'kept')
  t.equal(up.headers['x-forwarded-for'], '127.0.0.1', "an untrusted client's X-Forwarded-For is replaced by its address")
  t.equal(up.headers['x-forwarded-proto'], 'http')
  t.equal(up.headers['x-forwarded-host'], 'client.example')
  t.equal(up.headers.host, new URL(origin).host, 'Host is the upstream\'s')
  t.equal(up.headers['x-request-id'], 'req-123')
  t.match(String(up.headers.traceparent), /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/)
  t.not(String(up.headers.traceparent), '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'a new span id for our hop')
})

t.test('Keep-Alive, TE, Upgrade and headers named by Connection never reach the upstream', async (t) => {
  const seen = nextUpstreamRequest()
  const r = await rawExchange(proxy.port, 'GET /plain/__stub/echo HTTP/1.1\r\nHost: x\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Hop: secret-hop\r\nConnection: close, X-Hop\r\n\r\n')
  t.match(r.data, /^HTTP\/1\.1 200 /)
  const up = await seen
  for (const h of ['keep-alive', 'te', 'upgrade', 'x-hop']) t.notOk(up.headers[h], `${h} removed`)
  t.not(up.headers.connection, 'close', "the client's Connection header is not forwarded")
})

t.test('a request without trace context starts one and gets a generated request id', async (t) => {
  const seen = nextUpstreamRequest()
  const res = await request(proxy.url('/plain/__stub/echo'))
  await res.body.dump()
  const id = res.headers['x-request-id']
  t.match(String(id), /^[0-9a-f]{24}$/)
  const up = await seen
  t.equal(up.headers['x-request-id'], id)
  t.match(String(up.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
})

t.test('client credentials never reach an upstream that has its own', async (t) => {
  const seen = nextUpstreamRequest()
  const res = await request(proxy.url('/keyed/v1/models?key=client-secret&x=1'), {
    headers: { authorization: 'Bearer client-secret', 'x-api-key': 'client-secret', 'x-goog-api-key': 'client-secret' },
  })
  t.equal(res.statusCode, 200)
  await res.body.dump()
  const up = await seen
  t.equal(up.headers.authorization, 'Bearer upstream-secret')
  t.notOk(up.headers['x-api-key'])
  t.notOk(up.headers['x-goog-api-key'])
  t.equal(up.url, '/v1/models?x=1')
  t.notMatch(JSON.stringify(up), /client-secret/)
})

t.test('every error above was one access line and the workers still serve', async (t) => {
  const res = await request(proxy.url('/plain/__stub/echo'))
  t.equal(res.statusCode, 200)
  await res.body.dump()
  const codes = new Set(proxy.access().map((l) => l.error))
  for (const c of ['LEAKY_NO_ROUTE', 'LEAKY_BODY_TOO_LARGE', 'LEAKY_HEADERS_TOO_LARGE', 'LEAKY_UPSTREAM_CONNECT', 'LEAKY_UPSTREAM_TIMEOUT']) t.ok(codes.has(c), c)
  t.notMatch(JSON.stringify(proxy.lines), /client-secret|upstream-secret/)
})

t.test('HEAD gets the headers and no body', async (t) => {
  const r = await rawExchange(proxy.port, 'HEAD /plain/__stub/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 1500)
  t.match(r.data, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(r.data, /\r\n\r\n$/, 'the response ends right after its headers')
  t.match(r.data, /x-request-id: /)
  t.match(r.data, /content-length: \d+\r\n/i, 'the length a GET would have')
})
