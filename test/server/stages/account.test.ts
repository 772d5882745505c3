// Stage 9 — account, at the end of the whole line (accept … forward → stream → account) on a real uWS app in front
// of a real upstream: it runs once however the request ended, gives the admit slot back, hands the real usage to
// the token reconcile (the bucket then holds what the response used, not the estimate) and writes one access
// line with what the request left — also for an upstream failure (502) and a client that went away (499).
import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { stageHarness, stageConfig, Next, type RequestState } from '../../helpers/stage.js'
import { freePort } from '../../helpers/proxy.js'
import { accept } from '../../../src/server/stages/accept.js'
import { route } from '../../../src/server/stages/route.js'
import { identify } from '../../../src/server/stages/identify.js'
import { estimate } from '../../../src/server/stages/estimate.js'
import { limit } from '../../../src/server/stages/limit.js'
import { admit } from '../../../src/server/stages/admit.js'
import { forward } from '../../../src/server/stages/forward.js'
import { collectBody } from '../../../src/server/body.js'
import { ctx } from '../../../src/server/context.js'

const USAGE = { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 }
let slowArrived: (() => void) | null = null
const upstream = http.createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    if (req.url === '/v1/slow') {
      // never answered: the client goes away first
      slowArrived?.()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ object: 'chat.completion', model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, finish_reason: 'stop' }], usage: USAGE }))
  })
})
upstream.listen(0, '127.0.0.1')
await once(upstream, 'listening')
t.teardown(() => {
  upstream.closeAllConnections()
  upstream.close()
})
const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`

const h = await stageHarness(t, stageConfig(`limits:
  tokens: { per: key, tokens: 1000/month, burst: 100000 }
keys: [{ id: k1, key: sk-1 }]
upstreams:
  up: { provider: openai, targets: ["${origin}"] }
  dead: { provider: openai, targets: ["http://127.0.0.1:${await freePort()}"] }
routes:
  - { path: /dead/, upstream: dead, auth: key, limits: [tokens], strip_prefix: true }
  - { path: /, upstream: up, auth: key, limits: [tokens] }
`), (s, req) => {
  if (accept(s, req) !== Next.CONTINUE || route(s) !== Next.CONTINUE) return Next.REPLIED
  const afterLimit = (s: RequestState) => {
    if (admit(s) === Next.CONTINUE) forward(s)
  }
  const afterEstimate = (s: RequestState) => {
    if (limit(s, afterLimit) === Next.CONTINUE) afterLimit(s)
  }
  const afterBody = (s: RequestState) => {
    if (estimate(s, afterEstimate) === Next.CONTINUE) afterEstimate(s)
  }
  if (identify(s, afterBody) !== Next.CONTINUE) return Next.REPLIED
  collectBody(s, afterBody)
  return Next.PENDING
})

const BODY = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 })
const chat = (path = '/v1/chat/completions') => h.send(path, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-1' }, body: BODY })
const remaining = (r: { headers: Record<string, string | string[] | undefined> }) => Number(r.headers['x-ratelimit-remaining-tokens'])
const access = (id: string) => h.waitLog((l) => l.msg === 'access' && l.req_id === id)

t.test('a complete answer: one access line with the usage; the bucket keeps the real usage, not the estimate', async (t) => {
  const a = await chat()
  t.equal(a.status, 200)
  const line = await access(h.last!.requestId)
  const estimate = h.last!.costTokens
  t.ok(estimate > 15, `the estimate (${estimate}) is more than the response used`)
  t.match(line, { status: 200, key_id: 'k1', route: '/', upstream: 'up', tokens_estimate: estimate, tokens_prompt: 9, tokens_completion: 6, tokens_total: 15, tokens_source: 'reported', error: null })
  t.match(line.cost_usd, /^0\.0000\d+$/, 'priced at the plan\'s prices')
  t.equal(h.logs.filter((l) => l.msg === 'access' && l.req_id === h.last!.requestId).length, 1, 'account ran once')
  t.equal(Atomics.load(ctx.inflight, 0), 0, 'the admit slot is back')
  // the second request is charged the same estimate; between the two, the first's estimate became its 15 tokens
  const b = await chat()
  const used = remaining(a) - remaining(b)
  t.ok(used >= 15 && used <= 16, `the first request left 15 tokens charged (${used})`)
})

t.test('an upstream that cannot be reached: 502 logged with its code, the tokens refunded', async (t) => {
  const before = await chat()
  const r = await chat('/dead/v1/chat/completions')
  t.equal(r.status, 502)
  const line = await access(h.last!.requestId)
  t.match(line, { status: 502, error: 'LEAKY_UPSTREAM_CONNECT', upstream: 'dead' })
  t.equal(line.tokens_total, undefined, 'no usage to show')
  const after = await chat()
  const used = remaining(before) - remaining(after)
  t.ok(used >= 15 && used <= 16, `only the successful one in between is charged (${used})`)
  t.equal(Atomics.load(ctx.inflight, 0), 0)
})

t.test('a client that goes away: 499, the upstream request stopped, the slot back', async (t) => {
  const ac = new AbortController()
  const arrived = new Promise<void>((resolve) => (slowArrived = resolve))
  const p = request(h.url('/v1/slow'), { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-1' }, body: BODY, signal: ac.signal }).catch((e: Error) => e)
  await arrived
  const s = h.last!
  ac.abort()
  t.ok((await p) instanceof Error, 'the client gave up')
  const line = await access(s.requestId)
  t.match(line, { status: 499, error: 'LEAKY_CLIENT_CLOSED' })
  t.equal(s.accounted, true)
  t.equal(Atomics.load(ctx.inflight, 0), 0)
})
