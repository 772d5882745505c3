// Stage 7 — cache, between the estimate and forward, on a real uWS app with the cache owner in this process over a
// real MessagePort (as the generation's main thread runs it) and a real upstream: a miss goes upstream and is
// stored on its way, the same request again is a hit the upstream never sees, a request the cache must not see
// (no-store, a sampled one under when: deterministic, a GET on a POST-only route) bypasses it, scopes keep keys
// apart.
import t from 'tap'
import { stageHarness, stageConfig, Next, type RequestState } from '../../helpers/stage.js'
import { startCountingUpstream } from '../../helpers/counting-upstream.js'
import { accept } from '../../../src/server/stages/accept.js'
import { route } from '../../../src/server/stages/route.js'
import { identify } from '../../../src/server/stages/identify.js'
import { estimate } from '../../../src/server/stages/estimate.js'
import { cache, connectCache } from '../../../src/server/stages/cache.js'
import { forward } from '../../../src/server/stages/forward.js'
import { collectBody } from '../../../src/server/body.js'
import { ctx } from '../../../src/server/context.js'
import { CacheOwner } from '../../../src/cache/owner.js'
import { createLogger } from '../../../src/observability/logger.js'

const up = await startCountingUpstream()
t.teardown(() => up.close())

const h = await stageHarness(t, stageConfig(`keys: [{ id: a, key: sk-a }, { id: b, key: sk-b }]
upstreams:
  openai: { provider: openai, targets: ["${up.origin}"] }
routes:
  - path: /v1/
    upstream: openai
    auth: key
    cache: { ttl: 1h, scope: key, methods: [POST], when: deterministic }
`), (s, req) => {
  if (accept(s, req) !== Next.CONTINUE || route(s) !== Next.CONTINUE) return Next.REPLIED
  const go = (s: RequestState) => {
    if (estimate(s, go2) === Next.CONTINUE) go2(s)
  }
  const go2 = (s: RequestState) => {
    if (cache(s, forward) === Next.CONTINUE) forward(s)
  }
  if (identify(s, go) !== Next.CONTINUE) return Next.REPLIED
  collectBody(s, go)
  return Next.PENDING
})
const owner = new CacheOwner(h.config, createLogger({ level: 'silent', bindings: {} }).logger)
ctx.cache = connectCache(owner.connect())
// closing the owner closes its ports, the worker's end included
t.teardown(() => owner.close())

const chat = (key: string, content: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) => h.send('/v1/chat/completions', {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
  body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 20, temperature: 0, ...extra }),
})

t.test('miss, then hit: the upstream answers once, the client gets the same body twice', async (t) => {
  const before = up.calls.length
  const miss = await chat('sk-a', 'what is 2+2')
  t.equal(miss.status, 200)
  t.equal(h.last!.cacheStatus, 'miss')
  t.equal(up.calls.length, before + 1)
  const hit = await chat('sk-a', 'what is 2+2')
  t.equal(hit.status, 200)
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(h.last!.cacheStatus, 'hit')
  t.equal(hit.text, miss.text)
  t.equal(up.calls.length, before + 1, 'the hit never reached the upstream')
})

t.test('scope: key — another key\'s identical request is its own miss', async (t) => {
  const before = up.calls.length
  await chat('sk-b', 'what is 2+2')
  t.equal(h.last!.cacheStatus, 'miss')
  t.equal(up.calls.length, before + 1)
})

t.test('bypass: Cache-Control no-store, a sampled request under when: deterministic', async (t) => {
  const before = up.calls.length
  const ns = await chat('sk-a', 'what is 2+2', {}, { 'cache-control': 'no-store' })
  t.equal(ns.headers['x-cache'], 'BYPASS')
  t.equal(h.last!.cacheStatus, 'bypass')
  const sampled = await chat('sk-a', 'what is 2+2', { temperature: 0.7 })
  t.equal(sampled.headers['x-cache'], 'BYPASS')
  t.equal(up.calls.length, before + 2, 'both went upstream')
})
