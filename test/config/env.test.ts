// ${env:NAME} and ${env:NAME:-default}: substitution, defaults, the shell's "empty counts as unset", escapes,
// and a missing variable reported once, at the scalar that needs it.
import t from 'tap'
import { interpolateEnv } from '../../src/config/env.js'
import { parseConfig, formatIssue } from '../../src/config/index.js'

const env = { API_KEY: 'sk-123', EMPTY: '', PORT: '9000', WORKERS: '3', LOG: 'debug' }

t.test('interpolateEnv', async (t) => {
  const ok: [string, string][] = [
    ['plain text', 'plain text'],
    ['${env:API_KEY}', 'sk-123'],
    ['Bearer ${env:API_KEY}', 'Bearer sk-123'],
    ['${env:NOPE:-fallback}', 'fallback'],
    ['${env:NOPE:-}', ''],
    ['${env:EMPTY:-used}', 'used'],
    ['${env:API_KEY:-unused}', 'sk-123'],
    ['${env:NOPE:-a:b/c}', 'a:b/c'],
    ['$${env:API_KEY}', '${env:API_KEY}'],
    ['${env:PORT}-${env:LOG}', '9000-debug'],
    ['${HOME} stays', '${HOME} stays'],
  ]
  for (const [input, value] of ok) {
    const r = interpolateEnv(input, env)
    t.same(r.ok && r.value, value, `${input} → ${value}`)
  }
  t.same(interpolateEnv('${env:NOPE}', env), {
    ok: false, message: 'environment variable NOPE is not set (give a default with ${env:NOPE:-value})',
  })
  t.match(interpolateEnv('${env:EMPTY}', env), { ok: false, message: /EMPTY is not set/ }, 'empty counts as unset')
  t.match(interpolateEnv('${env:A1} ${env:B2}', {}), { ok: false, message: 'environment variables A1, B2 are not set' })
  t.match(interpolateEnv('${env:1BAD}', env), { ok: false, message: /malformed environment reference \$\{env:1BAD\}/ })
  t.match(interpolateEnv('${env:}', env), { ok: false, message: /malformed/ })
})

function load(yaml: string, e: NodeJS.ProcessEnv = env) {
  const r = parseConfig(yaml, 'e.yaml', e)
  return r.ok ? r.config : r.issues.map(formatIssue)
}

t.test('in a config: substituted before validation, so numbers and units work too', async (t) => {
  const c = load(`
listen: 127.0.0.1:\${env:PORT}
workers: \${env:WORKERS}
drain_timeout: \${env:DRAIN:-5s}
log: { level: "\${env:LOG}" }
admin: { token: "\${env:API_KEY}" }
upstreams:
  openai:
    targets: ["\${env:UPSTREAM:-https://api.openai.com}"]
    headers: { authorization: "Bearer \${env:API_KEY}" }
`)
  if (Array.isArray(c)) return t.fail(c.join('\n'))
  t.equal(c.listen, '127.0.0.1:9000')
  t.equal(c.workers, 3)
  t.equal(c.drain_timeout, 5000)
  t.equal(c.log.level, 'debug')
  t.equal(c.admin.token, 'sk-123')
  t.same(c.upstreams.openai.targets, ['https://api.openai.com'])
  t.same(c.upstreams.openai.headers, { authorization: 'Bearer sk-123' })
})

t.test('a missing variable is one issue at its scalar, and every missing one is listed', async (t) => {
  t.same(load(`
upstreams:
  openai:
    targets: [https://api.openai.com]
    headers:
      authorization: "Bearer \${env:OPENAI_API_KEY}"
drain_timeout: \${env:DRAIN}
keys:
  - id: ci
    key: \${env:CI_KEY}
`), [
    'e.yaml:6:22 upstreams.openai.headers.authorization: environment variable OPENAI_API_KEY is not set (give a default with ${env:OPENAI_API_KEY:-value})',
    // no second "expected a duration" issue for the same value
    'e.yaml:7:16 drain_timeout: environment variable DRAIN is not set (give a default with ${env:DRAIN:-value})',
    'e.yaml:10:10 keys[0].key: environment variable CI_KEY is not set (give a default with ${env:CI_KEY:-value})',
  ])
})

t.test('env defaults to process.env', async (t) => {
  const name = `LEAKY_TEST_ENV_${process.pid}`
  process.env[name] = '7'
  t.teardown(() => { delete process.env[name] })
  const r = parseConfig(`workers: \${env:${name}}`, 'p.yaml')
  t.equal(r.ok && r.config.workers, 7)
})

t.test('an unquoted reference inside { } is a YAML error with a hint', async (t) => {
  const issues = load('admin: { token: ${env:API_KEY} }')
  t.ok(Array.isArray(issues))
  t.match((issues as string[])[0], /^e\.yaml:1:\d+ .*\(quote values containing \$\{env:…\} inside \{ \} or \[ \]\)$/)
})
