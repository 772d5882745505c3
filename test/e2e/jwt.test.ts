// auth: jwt through the real proxy (2 worker threads): tokens signed in the test with keys a local JWKS server
// (node:http) publishes; refusals as 401 in the route's provider shape with LEAKY_JWT_* codes; the token never
// forwarded; per-key limits and tiers from the claims; bodies read or streamed while a new token is verified;
// key rotation picked up; a JWKS endpoint that fails keeps the last good set; no JWKS at all → 503.
import t from 'tap'
import { request } from 'undici'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { once } from 'node:events'
import net from 'node:net'
import { SignJWT, UnsecuredJWT } from 'jose'
import { startProxy } from '../helpers/proxy.js'
import { scratchDir } from '../helpers/scratch.js'
import { startStub } from '../helpers/stub.js'
import type { StubRequestEvent } from '../../src/stub/server.js'
import { AUDIENCE, ISSUER, sign, signingKey, startJwks } from '../helpers/jwks.js'

const r1 = await signingKey('r1', 'RS256')
const e1 = await signingKey('e1', 'ES256')
const d1 = await signingKey('d1', 'EdDSA')
const r2 = await signingKey('r2', 'RS256')

const jwks = await startJwks([r1.jwk, e1.jwk, d1.jwk])
t.teardown(() => jwks.close())
const { stub, origin } = await startStub({ seed: 3 })
t.teardown(() => stub.close())
const seen: StubRequestEvent[] = []
stub.on('request', (e: StubRequestEvent) => seen.push(e))

const proxy = await startProxy(`listen: 127.0.0.1:0
workers: 2
drain_timeout: 5s
admin: { listen: 127.0.0.1:0 }
log: { level: info }
limits:
  key-rpm: { per: key, requests: 2/hour, burst: 2 }
  org-rpm: { per: org, requests: 3/hour, burst: 3 }
tiers:
  gold: { scale: 2 }
jwt:
  issuer: "${ISSUER}"
  audience: ${AUDIENCE}
  jwks_url: ${jwks.url}
  jwks_cooldown: 0ms
  jwks_timeout: 2s
  claims: { key_id: sub, org: org_id, tier: plan }
upstreams:
  openai: { provider: openai, targets: ["${origin}"], headers: { authorization: "Bearer upstream-key" } }
  anthropic: { provider: anthropic, targets: ["${origin}"], headers: { x-api-key: upstream-key } }
  raw: { targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: openai, auth: jwt }
  - { path: /limited/, upstream: openai, strip_prefix: true, auth: jwt, limits: [key-rpm] }
  - { path: /org/, upstream: openai, strip_prefix: true, auth: jwt, limits: [org-rpm] }
  - { path: /anthropic/, upstream: anthropic, strip_prefix: true, auth: jwt }
  - { path: /raw/, upstream: raw, strip_prefix: true, auth: jwt }
`)
t.teardown(() => proxy.stop())

const CHAT = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 })

async function chat(urlPath: string, token: string | null, headers: Record<string, string> = {}): Promise<{ status: number; body: any; requestId: string }> {
  const h: Record<string, string> = { 'content-type': 'application/json', ...headers }
  if (token !== null) h.authorization = `Bearer ${token}`
  const res = await request(proxy.url(urlPath), { method: 'POST', headers: h, body: CHAT })
  const text = await res.body.text()
  return { status: res.statusCode, body: text === '' ? null : JSON.parse(text), requestId: String(res.headers['x-request-id']) }
}

t.test('RS256, ES256 and EdDSA tokens: 200, the claims are the key id, the token never reaches the upstream', async (t) => {
  for (const k of [r1, e1, d1]) {
    const token = await sign(k, { sub: `user-${k.kid}`, org_id: 'acme' })
    for (let i = 0; i < 2; i++) {
      const before = seen.length
      const r = await chat('/v1/chat/completions', token)
      t.equal(r.status, 200, `${k.alg} #${i + 1}`)
      t.equal(r.body.object, 'chat.completion')
      t.equal(seen.length, before + 1)
      const sent = seen.at(-1)!
      t.equal(sent.headers.authorization, 'Bearer upstream-key', 'the upstream gets its own credential')
      t.notMatch(sent.rawHeaders.join('\n') + sent.body.toString(), token.split('.')[2], 'and not the token')
      const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === r.requestId)
      t.equal(line.key_id, `user-${k.kid}`)
    }
  }
})

t.test('refusals: 401 with the reason code, in the route\'s provider shape; nothing forwarded', async (t) => {
  const now = Math.floor(Date.now() / 1000)
  const [h, , s] = (await sign(r1, { sub: 'x' })).split('.')
  const cases: Array<[string, string | null, string]> = [
    ['no token', null, 'LEAKY_JWT_MISSING'],
    ['alg none', new UnsecuredJWT({ sub: 'x', iss: ISSUER, aud: AUDIENCE, exp: now + 60 }).encode(), 'LEAKY_JWT_ALG'],
    ['HS256 with the RSA key\'s kid', await new SignJWT({ sub: 'x', iss: ISSUER, aud: AUDIENCE, exp: now + 60 }).setProtectedHeader({ alg: 'HS256', kid: 'r1' }).sign(new Uint8Array(32)), 'LEAKY_JWT_ALG'],
    ['unknown kid', await sign(r2, { sub: 'x' }), 'LEAKY_JWT_UNKNOWN_KID'],
    ['forged claims', `${h}.${Buffer.from(JSON.stringify({ sub: 'root', iss: ISSUER, aud: AUDIENCE, exp: now + 60 })).toString('base64url')}.${s}`, 'LEAKY_JWT_SIGNATURE'],
    ['expired', await sign(r1, { sub: 'x', exp: now - 3600 }), 'LEAKY_JWT_EXPIRED'],
    ['not yet valid', await sign(r1, { sub: 'x', nbf: now + 3600 }), 'LEAKY_JWT_NOT_YET_VALID'],
    ['wrong issuer', await sign(r1, { sub: 'x', iss: 'https://other.test/' }), 'LEAKY_JWT_ISSUER'],
    ['wrong audience', await sign(r1, { sub: 'x', aud: 'other' }), 'LEAKY_JWT_AUDIENCE'],
    ['over 8 KB', await sign(r1, { sub: 'x', pad: 'p'.repeat(8200) }), 'LEAKY_JWT_TOO_LARGE'],
    ['garbage', 'not-a-jwt', 'LEAKY_JWT_MALFORMED'],
    ['unknown tier', await sign(r1, { sub: 'x', plan: 'platinum' }), 'LEAKY_JWT_CLAIMS'],
  ]
  const before = seen.length
  for (const [name, token, code] of cases) {
    const r = await chat('/v1/chat/completions', token)
    t.equal(r.status, 401, name)
    t.equal(r.body.error.code, code, name)
    const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === r.requestId)
    t.equal(line.error, code, `${name}: the access line names the reason`)
    t.equal(line.status, 401)
  }
  const a = await chat('/anthropic/v1/messages', await sign(r1, { sub: 'x', exp: now - 3600 }))
  t.equal(a.status, 401)
  t.same(a.body.type, 'error')
  t.same(a.body.error.type, 'authentication_error', 'Anthropic\'s shape')
  t.same(a.body.error.code, 'LEAKY_JWT_EXPIRED')
  t.equal(seen.length, before, 'nothing was forwarded')
})

t.test('per-key limits and tiers come from the claims, per-org limits from the org claim', async (t) => {
  const alice = await sign(r1, { sub: 'alice' })
  const bob = await sign(e1, { sub: 'bob', plan: 'gold' })
  const statuses = async (token: string, n: number) => {
    const out: number[] = []
    for (let i = 0; i < n; i++) out.push((await chat('/limited/v1/chat/completions', token)).status)
    return out
  }
  t.same(await statuses(alice, 3), [200, 200, 429], 'alice: burst 2')
  t.same(await statuses(await sign(d1, { sub: 'alice' }), 1), [429], 'another token with the same sub shares her bucket')
  t.same(await statuses(bob, 5), [200, 200, 200, 200, 429], 'bob is gold (scale 2): burst 4')

  const org = async (sub: string) => (await chat('/org/v1/chat/completions', await sign(r1, { sub, org_id: 'umbrella' }))).status
  t.same([await org('u1'), await org('u2'), await org('u3'), await org('u4')], [200, 200, 200, 429], 'the org bucket is shared by its members')
})

t.test('a body is read (LLM route) or streamed (plain route) while a new token is verified', async (t) => {
  const r = await chat('/v1/chat/completions', await sign(r1, { sub: 'body-llm' }))
  t.equal(r.status, 200)
  t.same(JSON.parse(seen.at(-1)!.body.toString()).messages, [{ role: 'user', content: 'hi' }], 'the whole prompt reached the upstream')

  const big = Buffer.alloc(300 * 1024, 'x')
  const res = await request(proxy.url('/raw/__stub/echo'), {
    method: 'POST', headers: { authorization: `Bearer ${await sign(r1, { sub: 'body-raw' })}`, 'content-type': 'application/octet-stream' }, body: big,
  })
  await res.body.dump()
  t.equal(res.statusCode, 200)
  t.equal(seen.at(-1)!.body.length, big.length, 'all 300 KB streamed through')

  const bad = await request(proxy.url('/raw/__stub/echo'), {
    method: 'POST', headers: { authorization: `Bearer ${await sign(r1, { sub: 'x', aud: 'nope' })}` }, body: big,
  })
  t.equal(bad.statusCode, 401)
  t.equal((await bad.body.json() as any).error.code, 'LEAKY_JWT_AUDIENCE', 'refused with the body unread')
  t.equal(bad.headers.connection, 'close', 'and the connection closed: the rest of that body is never read')
  const after = await chat('/v1/chat/completions', await sign(r1, { sub: 'after-unread-body' }))
  t.equal(after.status, 200, 'the proxy serves on')
})

t.test('key rotation: a token signed with a newly published key is accepted without a reload', async (t) => {
  t.teardown(() => (jwks.keys = [r1.jwk, e1.jwk, d1.jwk]))
  jwks.keys = [r1.jwk, r2.jwk]
  const r = await chat('/v1/chat/completions', await sign(r2, { sub: 'rotated' }))
  t.equal(r.status, 200)
  await proxy.waitLog((l) => l.msg === 'jwks loaded' && Array.isArray(l.kids) && (l.kids as string[]).includes('r2'))
})

t.test('the JWKS endpoint failing or stalling: tokens of known keys still pass, the failure is logged', async (t) => {
  t.teardown(() => (jwks.mode = 'ok'))
  jwks.keys = [r1.jwk, e1.jwk, d1.jwk]
  for (const mode of ['fail', 'stall'] as const) {
    jwks.mode = mode
    // only this round's failures: on a loaded machine a worker's first fetch at start may have timed out too
    const earlier = new Set(proxy.lines)
    const r3 = await signingKey(`r3-${mode}`, 'RS256')
    const unknown = await chat('/v1/chat/completions', await sign(r3, { sub: 'x' }))
    t.equal(unknown.body.error.code, 'LEAKY_JWT_UNKNOWN_KID', `${mode}: a kid it cannot learn stays unknown`)
    const warn = await proxy.waitLog((l) => !earlier.has(l) && l.msg === 'jwks fetch failed' && String(l.reason).includes(mode === 'fail' ? 'HTTP 500' : 'no answer within 2000 ms'))
    t.equal(warn.detail, 'the last good key set stays in use', JSON.stringify(warn))
    t.equal((await chat('/v1/chat/completions', await sign(r1, { sub: `known-${mode}` }))).status, 200, `${mode}: a known key still verifies`)
  }
})

t.test('a reload while the JWKS endpoint is down keeps the keys the workers had', async (t) => {
  t.teardown(() => (jwks.mode = 'ok'))
  jwks.keys = [r1.jwk, e1.jwk, d1.jwk]
  jwks.mode = 'fail'
  const earlier = new Set(proxy.lines)
  process.kill(proxy.child.pid!, 'SIGHUP')
  await proxy.waitLog((l) => !earlier.has(l) && l.msg === 'reloaded')
  await proxy.waitLog((l) => !earlier.has(l) && l.msg === 'jwks fetch failed', 20_000)
  // r1: the key every worker has had since start (the rotation round above may have taught one worker a set without e1)
  for (let i = 0; i < 4; i++) {
    const r = await chat('/v1/chat/completions', await sign(r1, { sub: `after-reload-${i}` }))
    t.equal(r.status, 200, `request ${i + 1}: ${JSON.stringify(r.body?.error ?? '')}`)
  }
})

t.test('a client that goes away while its token is being verified: 499, the proxy serves on', async (t) => {
  t.teardown(() => (jwks.mode = 'ok'))
  jwks.mode = 'stall'
  const fetched = jwks.nextFetch()
  const ac = new AbortController()
  const pending = request(proxy.url('/v1/chat/completions'), {
    method: 'POST', signal: ac.signal,
    headers: { 'content-type': 'application/json', 'x-request-id': 'jwt-gone', authorization: `Bearer ${await sign(await signingKey('r-gone', 'RS256'), { sub: 'x' })}` },
    body: CHAT,
  })
  await fetched // the verification now waits for the stalled JWKS
  ac.abort()
  await t.rejects(pending)
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === 'jwt-gone')
  t.match(line, { status: 499, error: 'LEAKY_CLIENT_CLOSED' })
  jwks.mode = 'ok'
  t.equal((await chat('/v1/chat/completions', await sign(r1, { sub: 'after-abort' }))).status, 200)
})

t.test('no JWKS reachable: 503 LEAKY_JWT_KEYS_UNAVAILABLE; HS256 keys from ${file:} verify', async (t) => {
  const srv = net.createServer().listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const port = (srv.address() as net.AddressInfo).port
  srv.close()
  await once(srv, 'close')
  const dir = scratchDir('jwt-')
  const secret = Buffer.alloc(32, 9)
  writeFileSync(path.join(dir, 'hs.jwk'), `${JSON.stringify({ kty: 'oct', k: secret.toString('base64url') })}\n`)
  const base = (jwt: string) => `listen: 127.0.0.1:0
workers: 1
admin: { listen: 127.0.0.1:0 }
jwt:
${jwt}
upstreams:
  openai: { provider: openai, targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: openai, auth: jwt }
`
  const down = await startProxy(base(`  issuer: "${ISSUER}"\n  audience: ${AUDIENCE}\n  jwks_url: http://127.0.0.1:${port}/jwks\n`))
  t.teardown(() => down.stop())
  const r = await request(down.url('/v1/models'), { headers: { authorization: `Bearer ${await sign(r1, { sub: 'x' })}` } })
  t.equal(r.statusCode, 503)
  t.equal((await r.body.json() as any).error.code, 'LEAKY_JWT_KEYS_UNAVAILABLE')
  const warn = await down.waitLog((l) => l.msg === 'jwks fetch failed')
  t.match(warn.reason, /ECONNREFUSED/)

  const file = path.join(dir, 'leaky.yaml')
  writeFileSync(file, base(`  issuer: "${ISSUER}"\n  audience: ${AUDIENCE}\n  algorithms: [HS256]\n  keys: ["\${file:hs.jwk}"]\n`))
  const hs = await startProxy(file)
  t.teardown(() => hs.stop())
  const now = Math.floor(Date.now() / 1000)
  const token = await new SignJWT({ sub: 'svc', iss: ISSUER, aud: AUDIENCE, exp: now + 60 }).setProtectedHeader({ alg: 'HS256' }).sign(secret)
  const ok = await request(hs.url('/v1/models'), { headers: { authorization: `Bearer ${token}` } })
  await ok.body.dump()
  t.equal(ok.statusCode, 200, 'the secret read from the file (relative to the config) verifies')
})

t.test('no worker thread failed during all of the above', async (t) => {
  t.same(proxy.lines.filter((l) => l.msg === 'worker failed' || String(l.msg).startsWith('worker exited')), [])
})
