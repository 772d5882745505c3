// No secret leaves the proxy. Every secret of a run — a virtual key, JWTs (good and refused), the admin token, the
// upstream credential, an HMAC signing secret, all read through ${file:} — is used the way clients and operators
// use them (right and wrong, in headers and in ?key=, a reload that rotates the upstream credential, a reload that
// fails), then searched for in everything the proxy emits: its stdout log (access lines included, at level trace)
// and stderr, /metrics, /status.json, /status, `leaky validate`, and every response's headers and body.
import t from 'tap'
import { request } from 'undici'
import { spawnSync } from 'node:child_process'
import { writeFileSync, unlinkSync } from 'node:fs'
import path from 'node:path'
import { SignJWT } from 'jose'
import { CLI, startProxy } from '../helpers/proxy.js'
import { scratchDir } from '../helpers/scratch.js'
import { startStub } from '../helpers/stub.js'
import { AUDIENCE, ISSUER, sign, signingKey, startJwks } from '../helpers/jwks.js'

const dir = scratchDir('secrets-')
const VIRTUAL_KEY = 'vk-3f9a1c77e0b24d5aa9c1e2f3'
const WRONG_KEY = 'vk-wrong-8d6e5f4a3b2c1d0e'
const ADMIN_TOKEN = 'adm-5b7e9d1f3a2c4e6b8d0f'
const WRONG_ADMIN = 'adm-guess-0a1b2c3d4e5f'
const UPSTREAM_KEY = 'sk-upstream-71c3e5a9b0d2f4'
const UPSTREAM_KEY_2 = 'sk-upstream-rotated-88aa99bb'
const HS_SECRET = Buffer.alloc(32, 0x5a)
const secretFile = (name: string, value: string) => writeFileSync(path.join(dir, name), `${value}\n`)
secretFile('virtual-key', VIRTUAL_KEY)
secretFile('admin-token', ADMIN_TOKEN)
secretFile('openai-key', UPSTREAM_KEY)
secretFile('hs.jwk', JSON.stringify({ kty: 'oct', k: HS_SECRET.toString('base64url'), kid: 'hs' }))

const rsa = await signingKey('r1', 'RS256')
const jwks = await startJwks([rsa.jwk])
t.teardown(() => jwks.close())
const { stub, origin } = await startStub({ seed: 5 })
t.teardown(() => stub.close())
const upstreamSaw: string[] = []
stub.on('request', (e) => upstreamSaw.push(String(e.headers.authorization)))

const config = path.join(dir, 'leaky.yaml')
writeFileSync(config, `listen: 127.0.0.1:0
workers: 2
admin: { listen: 127.0.0.1:0, token: "\${file:admin-token}", metrics_public: false }
log: { level: trace }
keys:
  - { id: team-a, key: "\${file:${path.join(dir, 'virtual-key')}}" }
jwt:
  issuer: "${ISSUER}"
  audience: ${AUDIENCE}
  jwks_url: ${jwks.url}
upstreams:
  openai: { provider: openai, targets: ["${origin}"], headers: { authorization: "Bearer \${file:openai-key}" } }
routes:
  - { path: /v1/, upstream: openai, auth: key }
  - { path: /jwt/, upstream: openai, strip_prefix: true, auth: jwt }
`)
const proxy = await startProxy(config)
t.teardown(() => proxy.stop())

const now = Math.floor(Date.now() / 1000)
const GOOD_JWT = await sign(rsa, { sub: 'jwt-user' })
const EXPIRED_JWT = await sign(rsa, { sub: 'jwt-user', exp: now - 3600 })
const FOREIGN_JWT = await new SignJWT({ sub: 'x', iss: ISSUER, aud: AUDIENCE, exp: now + 60 }).setProtectedHeader({ alg: 'HS256', kid: 'hs' }).sign(HS_SECRET)

/** Everything the proxy said to anyone, as text. */
const emitted: string[] = []
const CHAT = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 })

async function call(url: string, headers: Record<string, string> = {}, body: string | null = CHAT): Promise<number> {
  const res = await request(url, { method: body === null ? 'GET' : 'POST', headers: { 'content-type': 'application/json', ...headers }, body: body ?? undefined })
  emitted.push(JSON.stringify(res.headers), await res.body.text())
  return res.statusCode
}

t.test('a run that uses every secret, right and wrong, and then a search for them in all the proxy emitted', async (t) => {
  const chat = proxy.url('/v1/chat/completions')
  t.equal(await call(chat, { authorization: `Bearer ${VIRTUAL_KEY}` }), 200)
  t.equal(await call(chat, { 'x-api-key': VIRTUAL_KEY }), 200)
  t.equal(await call(`${chat}?key=${VIRTUAL_KEY}`), 200)
  t.equal(await call(chat, { authorization: `Bearer ${WRONG_KEY}` }), 401)
  t.equal(await call(`${chat}?key=${WRONG_KEY}`), 401)
  const jwtChat = proxy.url('/jwt/v1/chat/completions')
  t.equal(await call(jwtChat, { authorization: `Bearer ${GOOD_JWT}` }), 200)
  t.equal(await call(jwtChat, { authorization: `Bearer ${GOOD_JWT}` }), 200)
  t.equal(await call(jwtChat, { authorization: `Bearer ${EXPIRED_JWT}` }), 401)
  t.equal(await call(jwtChat, { authorization: `Bearer ${FOREIGN_JWT}` }), 401)
  t.equal(await call(jwtChat, { authorization: `Bearer ${VIRTUAL_KEY}` }), 401, 'a virtual key on a JWT route')
  t.equal(await call(chat, { authorization: `Bearer ${GOOD_JWT}` }), 401, 'a JWT on a key route')
  t.same([...new Set(upstreamSaw)], [`Bearer ${UPSTREAM_KEY}`], 'the upstream got its credential (so it was in use)')

  const admin = (p: string) => `http://127.0.0.1:${proxy.adminPort}${p}`
  for (const p of ['/metrics', '/status.json', '/status']) {
    t.equal(await call(admin(p), { authorization: `Bearer ${ADMIN_TOKEN}` }, null), 200, p)
    t.equal(await call(admin(p), { authorization: `Bearer ${WRONG_ADMIN}` }, null), 401, `${p} with a wrong token`)
  }
  t.equal(await call(admin(`/status?token=${WRONG_ADMIN}`), {}, null), 401)

  // the upstream credential rotated in its file, picked up by a reload; then a reload whose secret file is gone
  secretFile('openai-key', UPSTREAM_KEY_2)
  process.kill(proxy.child.pid!, 'SIGHUP')
  await proxy.waitLog((l) => l.msg === 'reloaded')
  t.equal(await call(chat, { authorization: `Bearer ${VIRTUAL_KEY}` }), 200)
  t.equal(upstreamSaw.at(-1), `Bearer ${UPSTREAM_KEY_2}`, 'the rotated credential is in use')
  unlinkSync(path.join(dir, 'openai-key'))
  process.kill(proxy.child.pid!, 'SIGHUP')
  const failed = await proxy.waitLog((l) => l.msg === 'reload failed: config invalid, old config stays in force')
  t.match(JSON.stringify(failed.errors), /cannot read \$\{file:openai-key\} \(.*openai-key\): no such file/, 'the reload names the file')
  secretFile('openai-key', UPSTREAM_KEY_2)

  const validate = spawnSync(process.execPath, [CLI, 'validate', '-c', config], { encoding: 'utf8' })
  t.equal(validate.status, 0, validate.stderr)
  emitted.push(validate.stdout, validate.stderr)

  // the access lines of every request above are written before the last response ends; one more makes sure
  const last = await call(chat, { authorization: `Bearer ${VIRTUAL_KEY}`, 'x-request-id': 'last-one' })
  t.equal(last, 200)
  await proxy.waitLog((l) => l.msg === 'access' && l.req_id === 'last-one')
  const logs = proxy.lines.map((l) => JSON.stringify(l)).join('\n') + proxy.stderr
  t.equal(proxy.access().length, 13, 'an access line for each of the 13 proxied requests')

  const all = `${logs}\n${emitted.join('\n')}`
  const secrets: Record<string, string> = {
    'virtual key': VIRTUAL_KEY,
    'a wrong virtual key': WRONG_KEY,
    'admin token': ADMIN_TOKEN,
    'a wrong admin token': WRONG_ADMIN,
    'upstream credential': UPSTREAM_KEY,
    'rotated upstream credential': UPSTREAM_KEY_2,
    'HMAC secret (base64url)': HS_SECRET.toString('base64url'),
    'JWT': GOOD_JWT,
    'JWT signature': GOOD_JWT.split('.')[2],
    'expired JWT signature': EXPIRED_JWT.split('.')[2],
    'foreign JWT signature': FOREIGN_JWT.split('.')[2],
  }
  for (const [name, value] of Object.entries(secrets)) {
    const at = all.indexOf(value)
    t.equal(at, -1, `${name} appears nowhere${at >= 0 ? `: …${all.slice(Math.max(0, at - 200), at + 40)}…` : ''}`)
  }
})
