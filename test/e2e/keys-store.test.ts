// Runtime keys across restarts and upgrades, on a real proxy: a key made through the admin API serves again after a
// restart and after an upgrade (audited with the config's sha256). A corrupt store: keys-corrupt.test.ts.
import t from 'tap'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { metricValue, scrapeMetrics, startProxy, type Proxy } from '../helpers/proxy.js'
import { scratchDir } from '../helpers/scratch.js'

const ADMIN = 'admin-SECRET-tok-2'
const YAML_KEY = 'yaml-SECRET-key-2'
const dir = scratchDir('keys-store-')
const file = path.join(dir, 'leaky.yaml')
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
let proxy: Proxy = await startProxy(file)
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

t.test('keys survive a restart and an upgrade', { timeout: 240_000 }, async (t) => {
  const keep = await admin('POST', '/admin/keys', { id: 'durable' })
  t.equal(await chat(keep.body.secret), 200, 'served at once (the admin API pushes to the workers)')
  t.equal(await proxy.stop(), 0)
  proxy = await startProxy(file)
  t.equal((await chat(keep.body.secret)), 200, 'runtime key after restart')
  t.equal(metricValue(await scrapeMetrics(proxy), 'leaky_runtime_keys_enabled'), 1)

  proxy.child.kill('SIGUSR2')
  const up = await proxy.waitLog((l) => l.msg === 'upgraded', 60_000)
  proxy.adminPort = up.admin_port as number
  t.equal(await chat(keep.body.secret), 200, 'runtime key after an upgrade')
  const sha = createHash('sha256').update(readFileSync(file)).digest('hex')
  const audited = readFileSync(path.join(dir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.match(audited.find((l) => l.event === 'upgrade'), { source: 'SIGUSR2', result: 'ok', generation: 2, previous: 1, config_sha256_before: sha, config_sha256_after: sha })
})
