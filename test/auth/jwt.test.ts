// The JWT verifier against a real JWKS server (node:http, keys generated with jose): the cache by hash until exp,
// the unknown-kid refresh bounded by jwks_cooldown, key rotation, the last good set kept when the endpoint fails,
// stalls or serves garbage, a cache emptied when the issuer withdraws a key, and every refusal's reason code.
import t, { type Test } from 'tap'
import '../helpers/scratch.js'
import { once } from 'node:events'
import net from 'node:net'
import { UnsecuredJWT, SignJWT } from 'jose'
import { parseConfig, formatIssue } from '../../src/config/index.js'
import { JwtVerifier, failed, type JwtResult } from '../../src/auth/jwt.js'
import { AUDIENCE, ISSUER, sign, signingKey, startJwks } from '../helpers/jwks.js'

const r1 = await signingKey('r1', 'RS256')
const e1 = await signingKey('e1', 'ES256')
const d1 = await signingKey('d1', 'EdDSA')
const r2 = await signingKey('r2', 'RS256')
const stranger = await signingKey('r1', 'RS256') // same kid as r1, another key

const jwks = await startJwks([r1.jwk, e1.jwk, d1.jwk])
t.teardown(() => jwks.close())

interface Events { loaded: Array<{ kids: readonly string[]; removed: boolean }>; failed: string[] }

function verifier(t: Test, jwt: string, tiers = ''): { v: JwtVerifier; ev: Events } {
  const r = parseConfig(`${tiers}jwt:\n${jwt}`, 'j.yaml', {})
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'))
  const ev: Events = { loaded: [], failed: [] }
  const v = new JwtVerifier(r.config.jwt!, r.config.tiers, {
    loaded: (_url, kids, removed) => ev.loaded.push({ kids, removed }),
    failed: (_url, reason) => ev.failed.push(reason),
  })
  t.teardown(() => v.close())
  return { v, ev }
}

// a URL of its own per verifier: a worker keeps the last good set of a URL across plans (reloads), and each test
// here starts from what its own fetches give it
let urls = 0
const remote = (cooldown: string, extra = '') => `  issuer: "${ISSUER}"\n  audience: ${AUDIENCE}\n  jwks_url: "${jwks.url}?v=${++urls}"\n  jwks_cooldown: ${cooldown}\n  jwks_timeout: 1s\n  algorithms: [RS256, ES256, EdDSA]\n  claims: { key_id: sub, org: org_id, tier: plan }\n${extra}`

async function check(v: JwtVerifier, token: string): Promise<JwtResult> {
  return v.verify(token, v.digest(token))
}

function code(r: JwtResult): string {
  return failed(r) ? r.code : 'ok'
}

t.test('RS256, ES256 and EdDSA tokens verify; claims become id, org and tier; the verdict is cached until exp', async (t) => {
  const { v } = verifier(t, remote('60s'), 'tiers: { gold: { scale: 4 } }\n')
  for (const k of [r1, e1, d1]) {
    const token = await sign(k, { sub: `user-${k.alg}`, org_id: 'acme', plan: 'gold' })
    const r = await check(v, token)
    t.same(r, { id: `user-${k.alg}`, org: 'acme', tier: 'gold', scale: 4, expMs: r.expMs }, k.alg)
    t.equal(v.cached(v.digest(token), Date.now()), r, 'the next request is answered from the cache, the same object')
    t.equal(v.cached(v.digest(token), (r as { expMs: number }).expMs), null, 'not at exp')
    t.equal(v.cached(v.digest(token), Date.now()), null, 'and the expired entry is gone')
  }
  const untiered = await check(v, await sign(r1, { sub: 'plain' }))
  t.same([untiered.id, untiered.org, untiered.scale], ['plain', '', 1], 'no org or tier claim: no org, scale 1')
})

t.test('one verification for a burst of requests with the same new token', async (t) => {
  const { v } = verifier(t, remote('60s'))
  const token = await sign(r1, { sub: 'burst' })
  const d = v.digest(token)
  t.equal(v.verify(token, d), v.verify(token, d), 'the same pending verification')
})

t.test('every refusal has its reason code', async (t) => {
  const { v } = verifier(t, remote('60s'), 'tiers: { gold: { scale: 4 } }\n')
  const now = Math.floor(Date.now() / 1000)
  const hs = await new SignJWT({ sub: 'x', iss: ISSUER, aud: AUDIENCE, exp: now + 60 }).setProtectedHeader({ alg: 'HS256', kid: 'r1' }).sign(new Uint8Array(32))
  const none = new UnsecuredJWT({ sub: 'x', iss: ISSUER, aud: AUDIENCE, exp: now + 60 }).encode()
  const [h, p] = (await sign(r1, { sub: 'x' })).split('.')
  const cases: Array<[string, string, string]> = [
    ['alg none', none, 'LEAKY_JWT_ALG'],
    ['HS256 on an RS/ES/EdDSA issuer (key confusion)', hs, 'LEAKY_JWT_ALG'],
    ['another key under a known kid', await sign(stranger, { sub: 'x' }), 'LEAKY_JWT_SIGNATURE'],
    ['payload swapped under a valid signature', `${h}.${Buffer.from(JSON.stringify({ sub: 'admin', iss: ISSUER, aud: AUDIENCE, exp: now + 60 })).toString('base64url')}.${(await sign(r1, { sub: 'x' })).split('.')[2]}`, 'LEAKY_JWT_SIGNATURE'],
    ['expired', await sign(r1, { sub: 'x', exp: now - 120 }), 'LEAKY_JWT_EXPIRED'],
    ['expired within clock_skew is still good', await sign(r1, { sub: 'x', exp: now - 5 }), 'ok'],
    ['not yet valid', await sign(r1, { sub: 'x', nbf: now + 600 }), 'LEAKY_JWT_NOT_YET_VALID'],
    ['issued in the future', await sign(r1, { sub: 'x', iat: now + 600 }), 'LEAKY_JWT_NOT_YET_VALID'],
    ['wrong issuer', await sign(r1, { sub: 'x', iss: 'https://evil.test/' }), 'LEAKY_JWT_ISSUER'],
    ['wrong audience', await sign(r1, { sub: 'x', aud: 'someone-else' }), 'LEAKY_JWT_AUDIENCE'],
    ['no exp', await sign(r1, { sub: 'x', exp: undefined }), 'LEAKY_JWT_CLAIMS'],
    ['no sub', await sign(r1, {}), 'LEAKY_JWT_CLAIMS'],
    ['a tier that is not configured', await sign(r1, { sub: 'x', plan: 'platinum' }), 'LEAKY_JWT_CLAIMS'],
    ['not a JWT', 'abc.def', 'LEAKY_JWT_MALFORMED'],
    ['header not JSON', `${Buffer.from('nope').toString('base64url')}.${p}.sig`, 'LEAKY_JWT_MALFORMED'],
    ['a JWE (5 parts)', 'a.b.c.d.e', 'LEAKY_JWT_MALFORMED'],
  ]
  for (const [name, token, want] of cases) {
    const r = await check(v, token)
    t.equal(code(r), want, name)
    if (failed(r)) t.notMatch(r.detail, token.split('.')[2] ?? token, `${name}: the detail does not carry the token`)
  }
})

t.test('an unknown kid refreshes the JWKS at most once per jwks_cooldown', async (t) => {
  const { v } = verifier(t, remote('60s'))
  await check(v, await sign(r1, { sub: 'warm' }))
  const before = jwks.fetches
  t.equal(code(await check(v, await sign(r2, { sub: 'x' }))), 'LEAKY_JWT_UNKNOWN_KID', 'r2 is not published')
  t.equal(jwks.fetches, before + 1, 'one fetch for the unknown kid')
  for (let i = 0; i < 5; i++) t.equal(code(await check(v, await sign(r2, { sub: `x${i}` }))), 'LEAKY_JWT_UNKNOWN_KID')
  t.equal(jwks.fetches, before + 1, 'no more within the cooldown, however many tokens name unknown kids')
})

t.test('key rotation: a token with the new kid makes the verifier fetch the set that has it', async (t) => {
  jwks.keys = [r1.jwk, e1.jwk, d1.jwk]
  t.teardown(() => (jwks.keys = [r1.jwk, e1.jwk, d1.jwk]))
  const { v, ev } = verifier(t, remote('0ms'))
  t.equal(code(await check(v, await sign(r1, { sub: 'old' }))), 'ok')
  jwks.keys = [r1.jwk, r2.jwk]
  t.equal(code(await check(v, await sign(r2, { sub: 'new' }))), 'ok', 'the rotated-in key verifies')
  t.same(ev.loaded.at(-1), { kids: ['r1', 'r2'], removed: true }, 'e1 and d1 were withdrawn')
})

t.test('a withdrawn key: tokens it signed leave the cache', async (t) => {
  t.teardown(() => (jwks.keys = [r1.jwk, e1.jwk, d1.jwk]))
  const { v } = verifier(t, remote('0ms'))
  const old = await sign(e1, { sub: 'old' })
  t.equal(code(await check(v, old)), 'ok')
  t.not(v.cached(v.digest(old), Date.now()), null, 'cached')
  jwks.keys = [r1.jwk, r2.jwk]
  await check(v, await sign(r2, { sub: 'trigger' })) // unknown kid → refresh → e1 gone
  t.equal(v.cached(v.digest(old), Date.now()), null, 'the cache was emptied')
  t.equal(code(await check(v, old)), 'LEAKY_JWT_UNKNOWN_KID', 'and the token is refused on its next use')
})

for (const mode of ['fail', 'garbage', 'stall'] as const) {
  t.test(`JWKS endpoint ${mode}: the last good set stays in use`, async (t) => {
    t.teardown(() => (jwks.mode = 'ok'))
    const { v, ev } = verifier(t, remote('0ms'))
    t.equal(code(await check(v, await sign(r1, { sub: 'before' }))), 'ok')
    jwks.mode = mode
    const t0 = performance.now()
    t.equal(code(await check(v, await sign(r2, { sub: 'x' }))), 'LEAKY_JWT_UNKNOWN_KID', 'an unknown kid stays unknown')
    if (mode === 'stall') t.ok(performance.now() - t0 >= 950, 'after jwks_timeout')
    t.match(ev.failed.at(-1), { fail: /HTTP 500/, garbage: /not JSON/, stall: /no answer within 1000 ms/ }[mode])
    t.equal(code(await check(v, await sign(r1, { sub: 'after' }))), 'ok', 'tokens of the known keys still verify')
    t.equal(code(await check(v, await sign(e1, { sub: 'after' }))), 'ok')
  })
}

t.test('a new verifier for the same URL (a reload) starts from the last good set while the endpoint fails', async (t) => {
  t.teardown(() => (jwks.mode = 'ok'))
  const cfg = `  issuer: "${ISSUER}"\n  audience: ${AUDIENCE}\n  jwks_url: "${jwks.url}?v=shared"\n`
  const { v: before } = verifier(t, cfg)
  t.equal(code(await check(before, await sign(r1, { sub: 'x' }))), 'ok')
  jwks.mode = 'fail'
  const { v: after } = verifier(t, cfg)
  t.equal(code(await check(after, await sign(e1, { sub: 'y' }))), 'ok', 'not LEAKY_JWT_KEYS_UNAVAILABLE')
})

t.test('no JWKS ever fetched: LEAKY_JWT_KEYS_UNAVAILABLE, and the first good fetch ends it', async (t) => {
  const srv = net.createServer().listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const port = (srv.address() as net.AddressInfo).port
  srv.close()
  const r = parseConfig(`jwt: { issuer: "${ISSUER}", audience: ${AUDIENCE}, jwks_url: "http://127.0.0.1:${port}/jwks", jwks_cooldown: 0ms }`, 'j.yaml', {})
  if (!r.ok) return t.fail(r.issues.map(formatIssue).join('\n'))
  const failures: string[] = []
  const v = new JwtVerifier(r.config.jwt!, {}, { loaded: () => {}, failed: (_u, reason) => failures.push(reason) })
  t.teardown(() => v.close())
  t.equal(code(await check(v, await sign(r1, { sub: 'x' }))), 'LEAKY_JWT_KEYS_UNAVAILABLE')
  t.match(failures[0], /ECONNREFUSED/)
})

t.test('keys in the config: HS256 with an oct JWK, PEM public keys', async (t) => {
  const secret = Buffer.alloc(32, 7)
  const now = Math.floor(Date.now() / 1000)
  const hsToken = (key: Uint8Array, claims: Record<string, unknown> = {}) =>
    new SignJWT({ sub: 'svc', iss: ISSUER, aud: AUDIENCE, exp: now + 60, ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(key)
  const { v } = verifier(t, `  issuer: "${ISSUER}"\n  audience: ${AUDIENCE}\n  algorithms: [HS256]\n  keys: [{ kty: oct, k: ${secret.toString('base64url')} }]\n`)
  t.equal(code(await check(v, await hsToken(secret))), 'ok')
  t.equal(code(await check(v, await hsToken(Buffer.alloc(32, 8)))), 'LEAKY_JWT_SIGNATURE', 'another secret')
  t.equal(code(await check(v, await sign(r1, { sub: 'x' }))), 'LEAKY_JWT_ALG', 'RS256 is not listed')

  const { createPublicKey } = await import('node:crypto')
  const pem = createPublicKey({ key: r1.jwk as import('node:crypto').JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string
  const { v: pv } = verifier(t, `  issuer: "${ISSUER}"\n  audience: ${AUDIENCE}\n  keys:\n    - |\n${pem.trim().split('\n').map((l) => `      ${l}`).join('\n')}\n`)
  t.equal(code(await check(pv, await sign(r1, { sub: 'x' }))), 'ok', 'PEM key, kid-less: any token whose alg fits')
  t.equal(code(await check(pv, await sign(stranger, { sub: 'x' }))), 'LEAKY_JWT_SIGNATURE')
  t.equal(code(await check(pv, await sign(e1, { sub: 'x' }))), 'LEAKY_JWT_UNKNOWN_KID', 'no EC key configured')
})

