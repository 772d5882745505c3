// Admin roles and the audit log on a real proxy: viewer, operator and admin tokens (and the older admin.token) each
// reach exactly their endpoints (401 unknown, 403 wrong role); a source past admin.failed_auth gets 429 while other
// sources are unaffected; the audit log has every /admin/* call with token id and role, reloads with the config's
// sha256 before and after, failed authentications aggregated per source and reason, no secret; SIGUSR1 reopens it
// (logrotate); POST /admin/drain stops the service.
import t from 'tap'
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import path from 'node:path'
import http from 'node:http'
import { request } from 'undici'
import { startProxy } from '../helpers/proxy.js'
import { scratchDir } from '../helpers/scratch.js'

const TOK = { viewer: 'viewer-SECRET-1', operator: 'operator-SECRET-2', admin: 'admin-SECRET-3', legacy: 'legacy-SECRET-4' }
const sha = (s: string) => createHash('sha256').update(s).digest('hex')
const dir = scratchDir('roles-')
const file = path.join(dir, 'leaky.yaml')
const auditFile = path.join(dir, 'audit.log')
const yaml = (extra: string) => `listen: 127.0.0.1:0
workers: 1
drain_timeout: 2s
admin:
  listen: 127.0.0.1:0
  metrics_public: false
  failed_auth: 3/min
  token: "${TOK.legacy}"
  tokens:
    - { id: grafana, sha256: ${sha(TOK.viewer)}, role: viewer }
    - { id: oncall, token: "${TOK.operator}", role: operator }
    - { id: root, token: "${TOK.admin}", role: admin }
audit: { file: ${auditFile} }
key_store: { file: ${path.join(dir, 'keys.sqlite')} }
upstreams: { llm: { provider: openai, targets: [embedded] } }
routes: [{ path: /v1/, upstream: llm }]
${extra}`
writeFileSync(file, yaml(''))
const proxy = await startProxy(file)
t.teardown(() => proxy.stop())

// the throttled source is 127.0.0.2, so the rest of this file (from 127.0.0.1) is not blocked by it
const other = '127.0.0.2'

/** An admin call from `localAddress` (node:http: undici's connect options do not bind a local address). */
function call(method: string, p: string, token: string | null, localAddress = '127.0.0.1'): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxy.adminPort, path: p, method, localAddress, agent: false, headers: token === null ? {} : { authorization: `Bearer ${token}` } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }))
    })
    req.on('error', reject)
    req.end()
  })
}

function auditLines(f = auditFile): Array<Record<string, any>> {
  if (!existsSync(f)) return []
  return readFileSync(f, 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l))
}

t.test('each role reaches exactly its endpoints', async (t) => {
  const cases: Array<[string, string, Record<'none' | 'viewer' | 'operator' | 'admin' | 'legacy' | 'wrong', number>]> = [
    ['GET', '/live', { none: 200, viewer: 200, operator: 200, admin: 200, legacy: 200, wrong: 200 }],
    ['GET', '/ready', { none: 200, viewer: 200, operator: 200, admin: 200, legacy: 200, wrong: 200 }],
    ['GET', '/admin/openapi.json', { none: 200, viewer: 200, operator: 200, admin: 200, legacy: 200, wrong: 200 }],
    ['GET', '/metrics', { none: 401, viewer: 200, operator: 200, admin: 200, legacy: 200, wrong: 401 }],
    ['GET', '/status', { none: 401, viewer: 200, operator: 200, admin: 200, legacy: 200, wrong: 401 }],
    ['GET', '/status.json', { none: 401, viewer: 200, operator: 200, admin: 200, legacy: 200, wrong: 401 }],
    ['POST', '/admin/reload', { none: 401, viewer: 403, operator: 200, admin: 200, legacy: 200, wrong: 401 }],
    ['GET', '/admin/keys', { none: 401, viewer: 403, operator: 403, admin: 200, legacy: 200, wrong: 401 }],
    ['DELETE', '/admin/keys/nobody', { none: 401, viewer: 403, operator: 403, admin: 404, legacy: 404, wrong: 401 }],
  ]
  const token = { none: null, viewer: TOK.viewer, operator: TOK.operator, admin: TOK.admin, legacy: TOK.legacy, wrong: 'not-a-token' }
  for (const [method, p, want] of cases) {
    for (const who of Object.keys(want) as Array<keyof typeof want>) {
      // 'wrong' and 'none' from 127.0.0.1 count as failures: 3 per minute are allowed, so spread them over 127.0.0.3+
      const src = who === 'wrong' || who === 'none' ? `127.0.1.${cases.findIndex((c) => c[1] === p) * 2 + (who === 'wrong' ? 1 : 2)}` : undefined
      const r = await call(method, p, token[who], src)
      t.equal(r.status, want[who], `${who} ${method} ${p}: ${r.text.slice(0, 120)}`)
      if (r.status === 401) t.match(JSON.parse(r.text).error, { code: 'LEAKY_UNAUTHORIZED' })
      if (r.status === 403) t.match(JSON.parse(r.text).error, { code: 'LEAKY_ADMIN_FORBIDDEN', type: 'permission_error' })
    }
  }
})

t.test('a browser signs in with ?token= and gets its role', async (t) => {
  const res = await request(`http://127.0.0.1:${proxy.adminPort}/status?token=${TOK.viewer}`)
  await res.body.dump()
  t.equal(res.statusCode, 303)
  const cookie = String(res.headers['set-cookie']).split(';')[0]
  t.notMatch(cookie, TOK.viewer)
  const ok = await request(`http://127.0.0.1:${proxy.adminPort}/status.json`, { headers: { cookie } })
  await ok.body.dump()
  t.equal(ok.statusCode, 200)
  const no = await request(`http://127.0.0.1:${proxy.adminPort}/admin/reload`, { method: 'POST', headers: { cookie } })
  await no.body.dump()
  t.equal(no.statusCode, 403, 'a viewer cookie may not reload')
})

t.test('failed attempts per source: 429 past the limit, other sources unaffected', async (t) => {
  for (let i = 0; i < 3; i++) t.equal((await call('GET', '/status.json', `guess-${i}`, other)).status, 401)
  const blocked = await call('GET', '/status.json', TOK.admin, other)
  t.equal(blocked.status, 429, 'even a right token, from a source past the limit')
  t.match(JSON.parse(blocked.text).error, { code: 'LEAKY_ADMIN_THROTTLED' })
  t.ok(Number(blocked.headers['retry-after']) > 0 && Number(blocked.headers['retry-after']) <= 60)
  t.equal((await call('GET', '/status.json', TOK.viewer)).status, 200, '127.0.0.1 is not blocked')
})

t.test('a reload through the API is audited with the config sha256 before and after', async (t) => {
  const before = sha(readFileSync(file, 'utf8'))
  writeFileSync(file, yaml('# changed\n'))
  const after = sha(readFileSync(file, 'utf8'))
  const r = await call('POST', '/admin/reload', TOK.operator)
  t.equal(r.status, 200)
  t.match(JSON.parse(r.text), { ok: true, generation: 1 })
  writeFileSync(file, yaml('bogus_key: 1\n'))
  const bad = await call('POST', '/admin/reload', TOK.operator)
  t.equal(bad.status, 422)
  t.match(JSON.parse(bad.text), { ok: false, errors: [/bogus_key/], error: { code: 'LEAKY_RELOAD_FAILED' } })
  writeFileSync(file, yaml('# changed\n'))
  const lines = auditLines()
  // the role matrix above reloaded the unchanged file (before = after); this is the reload of the changed one
  const changed = lines.filter((l) => l.event === 'reload' && l.result === 'ok' && l.config_sha256_before !== l.config_sha256_after)
  t.equal(changed.length, 1)
  t.match(changed[0], { source: 'admin API (oncall)', config_sha256_before: before, config_sha256_after: after })
  t.match(lines.find((l) => l.event === 'reload' && l.result === 'failed'), { config_sha256_before: after })
  t.match(lines.find((l) => l.event === 'admin' && l.action === 'reload' && l.status === 200), { token_id: 'oncall', role: 'operator', result: 'ok' })
  t.match(lines.find((l) => l.event === 'admin' && l.status === 403), { token_id: 'grafana', role: 'viewer', result: 'forbidden' })
})

t.test('SIGUSR1 reopens the audit log', async (t) => {
  const rotated = `${auditFile}.1`
  renameSync(auditFile, rotated)
  process.kill(proxy.child.pid!, 'SIGUSR1')
  // the reopen message travels master → generation: retry the call until its line lands in the new file
  const start = Date.now()
  while (!auditLines().some((l) => l.event === 'admin' && l.action === 'keys.list')) {
    t.equal((await call('GET', '/admin/keys', TOK.admin)).status, 200)
    if (Date.now() - start > 5_000) throw new Error('no line in the reopened audit file')
    await new Promise((r) => setTimeout(r, 50))
  }
  t.ok(existsSync(rotated), 'the rotated file stays')
})

t.test('drain stops the service; auth failures were audited per source and reason; no secret anywhere', async (t) => {
  const r = await call('POST', '/admin/drain', TOK.operator)
  t.equal(r.status, 202)
  t.match(JSON.parse(r.text), { ok: true, drain_timeout_ms: 2000 })
  t.equal(await proxy.exited, 0)
  const lines = [...auditLines(`${auditFile}.1`), ...auditLines()]
  const failures = lines.filter((l) => l.event === 'auth_failures' && l.source === '127.0.0.2')
  t.match(failures.find((l) => l.reason === 'unknown_token'), { count: 3 })
  t.match(failures.find((l) => l.reason === 'throttled'), { count: 1 })
  t.ok(lines.some((l) => l.event === 'auth_failures' && l.reason === 'missing'))
  t.match(lines.find((l) => l.action === 'drain'), { token_id: 'oncall', status: 202 })
  const text = readFileSync(`${auditFile}.1`, 'utf8') + readFileSync(auditFile, 'utf8') + JSON.stringify(proxy.lines) + proxy.stderr
  for (const s of Object.values(TOK)) t.notMatch(text, s)
})
