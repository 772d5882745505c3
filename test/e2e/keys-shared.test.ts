// Runtime keys shared by two proxies through a real redis-server started here (`key_store.shared: redis`): a key made
// through proxy A serves on proxy B, a key revoked through A is refused by B within 2 s, and one made through B with
// the CLI (B's own SQLite file) reaches A. Each proxy has its own state directory.
import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { CLI, ROOT, startProxy, type Proxy } from '../helpers/proxy.js'
import { scratchDir } from '../helpers/scratch.js'
import { startRedis } from '../helpers/redis.js'

const ADMIN = 'admin-SECRET-shared'
const redis = await startRedis()
t.teardown(() => redis.stop())

function config(name: string): string {
  const dir = scratchDir(`shared-${name}-`)
  const file = path.join(dir, 'leaky.yaml')
  writeFileSync(file, `listen: 127.0.0.1:0
workers: 1
drain_timeout: 2s
admin: { listen: 127.0.0.1:0, tokens: [{ id: ops, token: "${ADMIN}", role: admin }] }
state_file: ${path.join(dir, 'buckets.snap')}
key_store: { shared: redis, poll: 100ms }
redis: { url: "${redis.url}", key_prefix: "test-shared:" }
upstreams: { llm: { provider: openai, targets: [embedded] } }
routes: [{ path: /v1/, upstream: llm, auth: key }]
`)
  return file
}

const fileA = config('a')
const fileB = config('b')
const a = await startProxy(fileA)
t.teardown(() => a.stop())
const b = await startProxy(fileB)
t.teardown(() => b.stop())

async function chat(p: Proxy, key: string): Promise<number> {
  const res = await request(p.url('/v1/chat/completions'), {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
  })
  await res.body.dump()
  return res.statusCode
}

async function admin(p: Proxy, method: 'POST' | 'DELETE', route: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await request(`http://127.0.0.1:${p.adminPort}${route}`, {
    method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.statusCode, body: await res.body.json() }
}

/** ms until `p` answers `status` for `key`; fails past 5 s. */
async function until(p: Proxy, key: string, status: number): Promise<number> {
  const start = performance.now()
  for (;;) {
    const sent = performance.now()
    if ((await chat(p, key)) === status) return sent - start
    if (performance.now() - start > 5_000) throw new Error(`not ${status} after 5 s`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

t.test('a key made on A serves on B; revoked on A, refused by B within 2 s', async (t) => {
  const made = await admin(a, 'POST', '/admin/keys', { id: 'team-x', org: 'x' })
  t.equal(made.status, 201)
  const secret = made.body.secret as string
  t.equal(await chat(a, secret), 200, 'A at once')
  const seen = await until(b, secret, 200)
  t.ok(seen < 2000, `B serves it after ${Math.round(seen)} ms`)
  t.equal((await admin(a, 'DELETE', '/admin/keys/team-x')).status, 200)
  const refused = await until(b, secret, 401)
  t.ok(refused < 2000, `B refuses it after ${Math.round(refused)} ms`)
  t.equal(await chat(a, secret), 401)
})

t.test('a key made with the CLI on B\'s store reaches A', async (t) => {
  const out = await new Promise<string>((resolve) => {
    const c = spawn(process.execPath, [CLI, 'key', 'create', '--id', 'from-cli', '--json', '-c', fileB], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    let s = ''
    c.stdout.on('data', (d) => (s += d))
    c.on('exit', () => resolve(s))
  })
  const secret = JSON.parse(out).secret as string
  t.ok((await until(a, secret, 200)) < 2000, 'A serves it')
  t.equal(await chat(b, secret), 200)
})
