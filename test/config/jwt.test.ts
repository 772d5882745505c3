// The jwt section and ${file:…}: YAML in, the config or every issue with file:line:col out.
import t from 'tap'
import { writeFileSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { generateKeyPairSync } from 'node:crypto'
import { scratchDir } from '../helpers/scratch.js'
import { parseConfig, formatIssue, type Config } from '../../src/config/index.js'
import { interpolateEnv } from '../../src/config/env.js'
import { redact } from '../../src/config/redact.js'

const dir = scratchDir('cfg-jwt-')
const file = path.join(dir, 'c.yaml')

function load(yaml: string): Config | string[] {
  const r = parseConfig(yaml, file, {})
  return r.ok ? r.config : r.issues.map((i) => formatIssue(i).replace(`${dir}/`, ''))
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const pub = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string
const priv = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
const block = (pem: string) => pem.trim().split('\n').map((l) => `      ${l}`).join('\n')

t.test('a jwt section: defaults, lists, keys as PEM and JWK', async (t) => {
  const c = load(`jwt:
  issuer: https://idp.example/
  audience: [a, b]
  keys:
    - |
${block(pub)}
    - { kty: oct, k: ${Buffer.alloc(32, 1).toString('base64url')}, kid: hs1 }
  algorithms: [RS256, HS256]
`)
  if (Array.isArray(c)) return t.fail(c.join('\n'))
  const j = c.jwt!
  t.same([j.issuer, j.audience, j.algorithms, j.clock_skew, j.jwks_refresh, j.jwks_cooldown, j.jwks_timeout, j.cache_size, j.claims],
    [['https://idp.example/'], ['a', 'b'], ['RS256', 'HS256'], 30_000, 600_000, 30_000, 5000, 10_000, { key_id: 'sub' }])
  t.equal(j.keys![0].kty, 'RSA', 'PEM became a JWK')
  t.same((redact(c) as { jwt: { keys: unknown } }).jwt.keys, ['***', '***'], 'keys are redacted (an HMAC secret is one)')
})

t.test('every mistake at its line:col', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['jwt: { issuer: x, audience: y }\n', ['c.yaml:1:6 jwt: set exactly one of jwks_url or keys']],
    ['jwt: { issuer: x, audience: y, jwks_url: "ftp://x/", keys: [] }\n', [
      'c.yaml:1:42 jwt.jwks_url: expected an http(s) URL of the issuer\'s JSON Web Key Set, got "ftp://x/"',
      'c.yaml:1:60 jwt.keys: needs at least 1 item',
    ]],
    ['jwt: { issuer: x, audiance: y, jwks_url: "http://x/" }\n', [
      'c.yaml:1:1 jwt.audience: missing required key "audience"',
      'c.yaml:1:19 jwt.audiance: unknown key "audiance" (did you mean "audience"?)',
    ]],
    ['jwt: { issuer: x, audience: y, jwks_url: "http://x/", algorithms: [none] }\n', [
      'c.yaml:1:68 jwt.algorithms[0]: expected one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519, HS256, HS384, HS512, got "none"',
    ]],
    [`jwt:\n  issuer: x\n  audience: y\n  keys:\n    - |\n${block(priv)}\n`, ['c.yaml:5:7 jwt.keys[0]: a private key: give the public key (or certificate); the proxy only verifies']],
    ['jwt: { issuer: x, audience: y, keys: [{ kty: oct, k: c2hvcnQ }] }\n', ['c.yaml:1:39 jwt.keys[0]: HMAC secret has 5 bytes; use at least 32 (256 bits)']],
    ['jwt: { issuer: x, audience: y, keys: ["hunter2-not-a-key"] }\n', ['c.yaml:1:39 jwt.keys[0]: expected a PEM public key or certificate, or a JWK (a map or its JSON text; for HS* { kty: oct, k: BASE64URL })']],
    ['jwt: { issuer: x, audience: y, keys: [{ kty: RSA, n: AQAB }] }\n', ['c.yaml:1:39 jwt.keys[0]: JWK does not parse: Invalid JWK RSA key']],
    ['jwt: { issuer: x, audience: y, keys: [{ kty: EC, use: enc, crv: P-256 }] }\n', ['c.yaml:1:39 jwt.keys[0]: JWK use is "enc": only signing keys (use: sig) verify tokens']],
    ['jwt: { issuer: x, audience: y, jwks_url: "http://x/", claims: { key_id: "" } }\n', ['c.yaml:1:73 jwt.claims.key_id: must not be empty']],
  ]
  for (const [yaml, want] of cases) {
    const got = load(yaml)
    if (!Array.isArray(got)) {
      t.fail(`accepted: ${yaml}`)
      continue
    }
    // node's own wording of a bad JWK may change between versions: match its start
    t.same(got.map((g) => g.replace(/(JWK does not parse: ).*/, '$1Invalid JWK RSA key')), want, yaml.slice(0, 60))
  }
})

t.test('${file:PATH}: content without its trailing newline, relative to the config, errors name the file', async (t) => {
  mkdirSync(path.join(dir, 'secrets'))
  writeFileSync(path.join(dir, 'secrets', 'openai'), 'sk-from-file\n')
  writeFileSync(path.join(dir, 'secrets', 'empty'), '\n')
  const c = load(`upstreams:
  openai:
    targets: [https://api.openai.com]
    headers: { authorization: "Bearer \${file:secrets/openai}", x-abs: "\${file:${path.join(dir, 'secrets', 'openai')}}" }
admin: { token: "$\${file:literal}" }
`)
  if (Array.isArray(c)) return t.fail(c.join('\n'))
  t.same(c.upstreams.openai.headers, { authorization: 'Bearer sk-from-file', 'x-abs': 'sk-from-file' })
  t.equal(c.admin.token, '${file:literal}', '$${file:…} is the literal text')

  t.same(load(`admin:
  token: "\${file:secrets/nope}"
keys:
  - { id: a, key: "\${file:secrets/empty}" }
  - { id: b, key: "\${file:secrets}" }
`), [
    `c.yaml:2:10 admin.token: cannot read \${file:secrets/nope} (${dir}/secrets/nope): no such file`,
    `c.yaml:4:19 keys[0].key: \${file:secrets/empty} (${dir}/secrets/empty) is empty`,
    `c.yaml:5:19 keys[1].key: cannot read \${file:secrets} (${dir}/secrets): is a directory`,
  ])
  t.match(interpolateEnv('${file:}', {}), { ok: false, message: /malformed file reference/ })
  t.match(interpolateEnv('${env:A}-${file:/nonexistent/x}', { A: '1' }), { ok: false, message: 'cannot read ${file:/nonexistent/x}: no such file' })
})
