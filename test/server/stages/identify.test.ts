// Stage 3 — identify, after accept and route, on a real uWS app: the virtual key from any of the places providers
// put one (Bearer, x-api-key, x-goog-api-key, api-key, ?key=) becomes key id, org, tier and scale; a missing or
// unknown key is 401 in the route's provider shape; auth: none identifies nobody.
import t from 'tap'
import { stageHarness, stageConfig, Next } from '../../helpers/stage.js'
import { accept } from '../../../src/server/stages/accept.js'
import { route } from '../../../src/server/stages/route.js'
import { identify } from '../../../src/server/stages/identify.js'

const h = await stageHarness(t, stageConfig(`tiers:
  gold: { scale: 4 }
keys:
  - { id: k-acme, key: sk-acme, org: acme, tier: gold }
  - { id: k-plain, key: sk-plain }
upstreams:
  up: { targets: ["http://127.0.0.1:9"] }
  g: { provider: gemini, targets: ["http://127.0.0.1:9"] }
routes:
  - { path: /open/, upstream: up }
  - { path: /g/, upstream: g, auth: key }
  - { path: /, upstream: up, auth: key }
`), (s, req, done) => {
  if (accept(s, req) !== Next.CONTINUE || route(s) !== Next.CONTINUE) return Next.REPLIED
  return identify(s, done)
})

t.test('a configured key: id, org, tier and the tier\'s scale', async (t) => {
  const r = await h.send('/x', { headers: { authorization: 'Bearer sk-acme' } })
  t.equal(r.status, 200)
  t.match(r.view, { keyId: 'k-acme', org: 'acme', tier: 'gold', scale: 4 })
  t.match((await h.send('/x', { headers: { authorization: 'Bearer sk-plain' } })).view, { keyId: 'k-plain', org: '', tier: '', scale: 1 })
})

t.test('every place a provider SDK sends its key', async (t) => {
  for (const headers of [{ 'x-api-key': 'sk-plain' }, { 'x-goog-api-key': 'sk-plain' }, { 'api-key': 'sk-plain' }, {}]) {
    const path = Object.keys(headers).length === 0 ? '/x?alt=sse&key=sk-plain' : '/x'
    t.equal((await h.send(path, { headers })).view.keyId, 'k-plain', JSON.stringify(headers) || path)
  }
})

t.test('missing or unknown key: 401 in the route\'s provider shape', async (t) => {
  const none = await h.send('/x')
  t.equal(none.status, 401)
  t.equal(JSON.parse(none.text).error.code, 'LEAKY_UNAUTHORIZED')
  t.match(JSON.parse(none.text).error.message, /missing API key/)
  const unknown = await h.send('/g/v1beta/models', { headers: { 'x-goog-api-key': 'sk-nope' } })
  t.equal(unknown.status, 401)
  t.equal(JSON.parse(unknown.text).error.status, 'UNAUTHENTICATED', 'Gemini\'s error shape')
})

t.test('auth: none identifies nobody, whatever is sent', async (t) => {
  const r = await h.send('/open/x', { headers: { authorization: 'Bearer sk-acme' } })
  t.equal(r.status, 200)
  t.equal(r.view.keyId, '')
})
