// Stage 1 — accept, alone on a real uWS app (test/helpers/stage.ts): what it copies out of uWS (hop-by-hop removed,
// client address, request id, trace context, normalised path) and what it refuses before any routing.
import t from 'tap'
import { stageHarness, stageConfig } from '../../helpers/stage.js'
import { rawExchange } from '../../helpers/raw.js'
import { accept } from '../../../src/server/stages/accept.js'

const h = await stageHarness(t, stageConfig(`server: { max_body: 1kb, trusted_proxies: [127.0.0.1/32] }
upstreams: { up: { targets: ["http://127.0.0.1:9"] } }
routes: [{ path: /, upstream: up }]
`), (s, req) => accept(s, req))

t.test('headers: hop-by-hop and the proxy\'s own are dropped, the rest kept in order', async (t) => {
  // raw bytes: an HTTP client writes its own Connection header
  const r = await rawExchange(h.port, 'GET /a HTTP/1.1\r\nHost: x\r\nX-One: 1\r\nConnection: x-hop\r\nX-Hop: gone\r\nX-Forwarded-Proto: https\r\nX-Two: 2\r\n\r\n', 300)
  t.match(r.data, /^HTTP\/1\.1 200 /)
  const headers = JSON.parse(r.data.slice(r.data.indexOf('\r\n\r\n') + 4)).headers as string[]
  t.same(headers.filter((_, i) => i % 2 === 0).filter((k) => k.startsWith('x-')), ['x-one', 'x-two'])
  t.equal(headers.indexOf('x-hop'), -1, 'a header the Connection header names is hop-by-hop')
  t.equal(headers.indexOf('host'), -1, 'host is the upstream\'s to set')
})

t.test('request id: a safe client id is kept, a missing or unsafe one replaced', async (t) => {
  t.equal((await h.send('/', { headers: { 'x-request-id': 'abc-123' } })).view.requestId, 'abc-123')
  const made = (await h.send('/')).view.requestId as string
  t.match(made, /^[0-9a-f]{24}$/)
  t.match((await h.send('/', { headers: { 'x-request-id': 'a b' } })).view.requestId, /^[0-9a-f]{24}$/)
})

t.test('trace context: continued with a new span, or started', async (t) => {
  const parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
  const tp = (await h.send('/', { headers: { traceparent: parent } })).view.traceparent as string
  t.match(tp, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/)
  t.not(tp, parent, 'our hop has its own span id')
  t.match((await h.send('/', { headers: { traceparent: 'garbage' } })).view.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
})

t.test('client address: the peer, or the trusted proxy\'s x-forwarded-for', async (t) => {
  t.equal((await h.send('/')).view.clientIp, '127.0.0.1')
  t.equal((await h.send('/', { headers: { 'x-forwarded-for': '203.0.113.9' } })).view.clientIp, '203.0.113.9')
})

t.test('the path is normalised before routing; a broken escape refused', async (t) => {
  const r = await h.send('/a/./b/../c')
  t.equal(r.status, 200)
  t.equal(h.last!.url, '/a/c')
  const bad = await h.send('/a/%zz')
  t.equal(bad.status, 400)
  t.equal(JSON.parse(bad.text).error.code, 'LEAKY_BAD_PATH')
})

t.test('refusals: body over max_body, a Transfer-Encoding other than chunked', async (t) => {
  const big = await h.send('/', { method: 'POST', headers: { 'content-length': '4096' }, body: 'x'.repeat(4096) })
  t.equal(big.status, 413)
  t.equal(JSON.parse(big.text).error.code, 'LEAKY_BODY_TOO_LARGE')
  t.equal(h.last!.errorCode, 'LEAKY_BODY_TOO_LARGE')
  const te = await rawExchange(h.port, 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n')
  t.match(te.data, /^HTTP\/1\.1 400 /)
  t.match(te.data, /LEAKY_BAD_TRANSFER_ENCODING/)
  t.ok(te.closed, 'a framing refusal closes the connection')
  const dup = await rawExchange(h.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx')
  t.match(dup.data, /LEAKY_DUPLICATE_CONTENT_LENGTH/)
})
