// A key store that is not a database at start, on a real proxy: it is moved aside and named in the log, and the proxy
// serves the config's keys with runtime keys off (leaky_runtime_keys_enabled 0, /admin/keys 503 LEAKY_KEYS_DISABLED).
import t from 'tap'
import { readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { metricValue, scrapeMetrics, startProxy, type Proxy } from '../helpers/proxy.js'
import { scratchDir } from '../helpers/scratch.js'

const ADMIN = 'admin-SECRET-tok-3'
const YAML_KEY = 'yaml-SECRET-key-3'
const dir = scratchDir('keys-corrupt-')
const file = path.join(dir, 'leaky.yaml')
const store = path.join(dir, 'leaky-keys.sqlite')
writeFileSync(file, `listen: 127.0.0.1:0
workers: 1
drain_timeout: 2s
admin: { listen: 127.0.0.1:0, tokens: [{ id: ops, token: "${ADMIN}", role: admin }] }
state_file: ${path.join(dir, 'buckets.snap')}
audit: { file: ${path.join(dir, 'audit.log')} }
keys:
  - { id: from-yaml, key: "${YAML_KEY}" }
upstreams:
  llm: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: llm, auth: key }
`)
writeFileSync(store, 'garbage, not a database '.repeat(300))
const proxy: Proxy = await startProxy(file)
t.teardown(() => proxy.stop())

async function chat(key: string): Promise<number> {
  const res = await request(proxy.url('/v1/chat/completions'), {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
  })
  await res.body.dump()
  return res.statusCode
}

async function admin(method: 'GET' | 'POST', p: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await request(`http://127.0.0.1:${proxy.adminPort}${p}`, {
    method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.statusCode, body: await res.body.json() }
}

t.test('a corrupt store at start: moved aside, named, runtime keys off, config keys serve', async (t) => {
  const line = await proxy.waitLog((l) => l.msg === 'runtime keys disabled; the config file\'s keys keep working')
  t.match(line.reason, new RegExp(`^key store ${store}: not a usable SQLite database .*; moved aside to ${store}\\.bad-`))
  t.ok(readdirSync(dir).some((f) => f.startsWith('leaky-keys.sqlite.bad-')), 'the bad file is kept beside')
  t.equal(metricValue(await scrapeMetrics(proxy), 'leaky_runtime_keys_enabled'), 0)
  t.equal((await chat(YAML_KEY)), 200, 'config keys serve')
  t.match(await admin('POST', '/admin/keys', { id: 'later' }), { status: 503, body: { error: { code: 'LEAKY_KEYS_DISABLED' } } })
  t.match(await admin('GET', '/admin/keys'), { status: 200, body: { enabled: false, disabled_reason: /moved aside/, keys: [{ id: 'from-yaml', read_only: true }] } })
})
