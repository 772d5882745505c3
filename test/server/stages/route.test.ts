// Stage 2 — route, after accept, on a real uWS app: host + longest prefix picks the route, strip_prefix and the
// target's base path make the upstream path, the provider picks the error shape; no route is a 404.
import t from 'tap'
import { stageHarness, stageConfig, Next } from '../../helpers/stage.js'
import { accept } from '../../../src/server/stages/accept.js'
import { route } from '../../../src/server/stages/route.js'

const h = await stageHarness(t, stageConfig(`upstreams:
  a: { targets: ["http://127.0.0.1:9/base"] }
  b: { targets: ["http://127.0.0.1:9"] }
  g: { provider: gemini, targets: ["http://127.0.0.1:9"] }
routes:
  - { path: /v1/, upstream: a }
  - { path: /v1/special/, upstream: b, strip_prefix: true }
  - { path: /v1/, host: api.example.com, upstream: b }
  - { path: /gemini/, upstream: g, strip_prefix: true }
`), (s, req) => accept(s, req) !== Next.CONTINUE ? Next.REPLIED : route(s))

t.test('longest prefix wins; the target\'s base path comes first', async (t) => {
  const a = await h.send('/v1/chat')
  t.equal(a.view.route, '/v1/')
  t.equal(a.view.upstream, 'a')
  t.equal(a.view.upstreamPath, '/base/v1/chat')
  const b = await h.send('/v1/special/x?y=1')
  t.equal(b.view.route, '/v1/special/')
  t.equal(b.view.upstreamPath, '/x', 'strip_prefix keeps a leading slash; the query is not part of the path')
  t.equal(b.view.query, 'y=1')
})

t.test('a host route wins over the same path without a host, its port ignored', async (t) => {
  const r = await h.send('/v1/chat', { headers: { host: 'API.example.com:8080' } })
  t.equal(r.view.upstream, 'b')
  t.equal((await h.send('/v1/chat', { headers: { host: 'other.example.com' } })).view.upstream, 'a')
})

t.test('the provider picks the error shape; no route is 404 LEAKY_NO_ROUTE', async (t) => {
  const g = await h.send('/gemini/v1beta/models')
  t.equal(g.view.upstreamPath, '/v1beta/models')
  t.equal(h.last!.errorShape, 'gemini')
  const none = await h.send('/nowhere')
  t.equal(none.status, 404)
  t.equal(JSON.parse(none.text).error.code, 'LEAKY_NO_ROUTE')
})
