// Stages 7–8 — forward and the response stream it owns, after accept, route, identify, the body and the estimate,
// on a real uWS app in front of a real upstream (node:http): what the upstream is sent (its own credentials, not
// the client's; forwarding headers; identity encoding on a metered route), how its answer is relayed (JSON whole,
// SSE event by event, the usage meter reading it on the way), a retried 503, a fallback from a dead upstream, and
// the 503 when no upstream is left.
import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { stageHarness, stageConfig, Next, type RequestState } from '../../helpers/stage.js'
import { freePort } from '../../helpers/proxy.js'
import { accept } from '../../../src/server/stages/accept.js'
import { route } from '../../../src/server/stages/route.js'
import { identify } from '../../../src/server/stages/identify.js'
import { estimate } from '../../../src/server/stages/estimate.js'
import { forward } from '../../../src/server/stages/forward.js'
import { collectBody } from '../../../src/server/body.js'

interface Seen { path: string; headers: http.IncomingHttpHeaders; body: string }
const seen: Seen[] = []
let failNext = 0
const USAGE = { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 }
const upstream = http.createServer((req, res) => {
  let body = ''
  req.setEncoding('utf8')
  req.on('data', (d: string) => (body += d))
  req.on('end', () => {
    seen.push({ path: req.url ?? '', headers: req.headers, body })
    if (failNext > 0) {
      failNext--
      res.writeHead(503, { 'content-type': 'application/json' })
      return res.end('{"error":{"message":"busy"}}')
    }
    const b = body === '' ? {} : (JSON.parse(body) as { stream?: boolean })
    if (b.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      for (const w of ['Hel', 'lo']) res.write(`data: ${JSON.stringify({ object: 'chat.completion.chunk', model: 'gpt-4o-mini', choices: [{ index: 0, delta: { content: w } }] })}\n\n`)
      res.write(`data: ${JSON.stringify({ object: 'chat.completion.chunk', model: 'gpt-4o-mini', choices: [], usage: USAGE })}\n\n`)
      return res.end('data: [DONE]\n\n')
    }
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' })
    res.end(JSON.stringify({ object: 'chat.completion', model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello' }, finish_reason: 'stop' }], usage: USAGE }))
  })
})
upstream.listen(0, '127.0.0.1')
await once(upstream, 'listening')
t.teardown(() => upstream.close())
const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
const dead = `http://127.0.0.1:${await freePort()}`

const h = await stageHarness(t, stageConfig(`keys: [{ id: k1, key: sk-client }]
upstreams:
  up:
    provider: openai
    targets: ["${origin}"]
    headers: { authorization: "Bearer upstream-key" }
    retry: { attempts: 2, backoff: 1ms..2ms, on: [503] }
  gone: { provider: openai, targets: ["${dead}"], fallback: up }
  nowhere: { targets: ["${dead}"] }
routes:
  - { path: /v1/, upstream: up, auth: key }
  - { path: /fb/, upstream: gone, strip_prefix: true }
  - { path: /none/, upstream: nowhere }
`), (s, req) => {
  if (accept(s, req) !== Next.CONTINUE || route(s) !== Next.CONTINUE) return Next.REPLIED
  const go = (s: RequestState) => {
    if (estimate(s, forward) === Next.CONTINUE) forward(s)
  }
  if (identify(s, go) !== Next.CONTINUE) return Next.REPLIED
  if (s.route!.readsBody) collectBody(s, go)
  else go(s)
  return Next.PENDING
})

const chat = (path: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) => h.send(path, {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: 'Bearer sk-client', 'accept-encoding': 'gzip', ...headers },
  body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 20, ...extra }),
})

t.test('the upstream gets its own credentials, never the client\'s, and the forwarding headers', async (t) => {
  seen.length = 0
  const r = await chat('/v1/chat/completions', {}, { 'x-request-id': 'req-1' })
  t.equal(r.status, 200)
  const got = seen[0].headers
  t.equal(got.authorization, 'Bearer upstream-key')
  t.equal(got['x-request-id'], 'req-1')
  t.equal(got['x-forwarded-for'], '127.0.0.1')
  t.equal(got['accept-encoding'], 'identity', 'a metered request asks for bytes the meter can read')
  t.match(got.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
})

t.test('a JSON answer is relayed whole, with its headers; the meter read its usage', async (t) => {
  const r = await chat('/v1/chat/completions')
  t.equal(JSON.parse(r.text).choices[0].message.content, 'Hello')
  t.equal(r.headers['x-upstream'], 'yes')
  t.equal(r.headers['x-request-id'], h.last!.requestId)
  t.match(h.last!.meter!.usage(), { prompt: 9, completion: 6, total: 15, source: 'reported' })
  t.equal(h.last!.bytesOut, Buffer.byteLength(r.text))
})

t.test('an SSE answer streams through; the usage chunk the proxy asked for is stripped', async (t) => {
  seen.length = 0
  const r = await chat('/v1/chat/completions', { stream: true })
  t.equal(r.headers['content-type'], 'text/event-stream')
  t.match(JSON.parse(seen[0].body), { stream_options: { include_usage: true } })
  t.match(r.text, /Hel/)
  t.notMatch(r.text, /total_tokens/, 'the client did not ask for usage, so it gets none')
  t.match(r.text, /\[DONE\]/)
  t.match(h.last!.meter!.usage(), { total: 15, source: 'reported' })
})

t.test('a 503 listed in retry.on is dropped and the request sent again', async (t) => {
  seen.length = 0
  failNext = 1
  const r = await chat('/v1/chat/completions')
  t.equal(r.status, 200)
  t.equal(seen.length, 2)
  t.equal(h.last!.attempts, 2)
})

t.test('a dead upstream falls back to its fallback; with none, 502 LEAKY_UPSTREAM_CONNECT', async (t) => {
  seen.length = 0
  const fb = await chat('/fb/v1/chat/completions')
  t.equal(fb.status, 200)
  t.equal(h.last!.upstream!.name, 'up')
  t.equal(seen[0].path, '/v1/chat/completions')
  const none = await h.send('/none/x')
  t.equal(none.status, 502)
  t.equal(JSON.parse(none.text).error.code, 'LEAKY_UPSTREAM_CONNECT')
})
