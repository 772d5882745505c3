// Redaction: every value marked secret in the schema (admin token, key material, upstream headers, redis
// credentials) becomes "***"; everything else is kept, and the config itself is not touched.
import t from 'tap'
import { createHash } from 'node:crypto'
import { parseConfig, redact, formatIssue, type Config } from '../../src/config/index.js'

const PLAIN_KEY = 'lk-plain-client-key-0123456789'
const SHA = createHash('sha256').update(PLAIN_KEY).digest('hex')
const OTHER_SHA = 'c'.repeat(64)

const yaml = `
admin: { token: "\${env:ADMIN_TOKEN}" }
keys:
  - { id: ci, key: "\${env:CI_KEY}", org: acme }
  - { id: bot, sha256: ${OTHER_SHA} }
upstreams:
  openai:
    provider: openai
    targets: [https://api.openai.com]
    headers: { Authorization: "Bearer \${env:OPENAI_API_KEY}", x-org: org-visible-in-header }
routes:
  - { path: /v1/, upstream: openai }
redis:
  url: redis://:redis-password@127.0.0.1:6379
  sentinel: { password: sentinel-password, sentinels: [{ host: 127.0.0.1, port: 26379 }] }
`

function config(): Config {
  const r = parseConfig(yaml, 'r.yaml', { ADMIN_TOKEN: 'admin-token-secret', CI_KEY: PLAIN_KEY, OPENAI_API_KEY: 'sk-upstream-secret' })
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'))
  return r.config
}

t.test('secrets become ***, the rest stays', async (t) => {
  const c = config()
  const before = JSON.stringify(c)
  const red = redact(c) as Config
  const text = JSON.stringify(red)
  for (const secret of ['admin-token-secret', PLAIN_KEY, SHA, OTHER_SHA, 'sk-upstream-secret', 'redis-password', 'sentinel-password', 'org-visible-in-header']) {
    t.notOk(text.includes(secret), `${secret.slice(0, 12)}… is not in the redacted output`)
  }
  t.equal(red.admin.token, '***')
  t.strictSame(red.keys.map((k) => [k.id, k.sha256, k.org, k.scale]), [['ci', '***', 'acme', 1], ['bot', '***', undefined, 1]])
  t.strictSame(red.upstreams.openai.headers, { authorization: '***', 'x-org': '***' }, 'header names kept, values hidden')
  t.equal(red.redis?.url, '***')
  t.equal(red.redis?.sentinel, '***' as unknown)
  // non-secret values are untouched
  t.equal(red.listen, c.listen)
  t.strictSame(red.routes, c.routes)
  t.strictSame(red.upstreams.openai.targets, ['https://api.openai.com'])
  t.equal(red.redis?.key_prefix, 'leaky:')
  t.equal(JSON.stringify(c), before, 'the config itself is not modified')
  t.equal(c.keys[0].sha256, SHA, 'the plain key is kept only as its sha256')
  t.notOk(JSON.stringify(c).includes(PLAIN_KEY), 'the plain key is not in the config at all')
})

t.test('absent optional secrets stay absent', async (t) => {
  const r = parseConfig('listen: ":8080"', 'r.yaml', {})
  if (!r.ok) return t.fail('invalid')
  const red = redact(r.config) as Config
  t.equal(red.admin.token, undefined)
  t.equal(red.redis, undefined)
  t.strictSame(red, JSON.parse(JSON.stringify(r.config)) as Config)
})
