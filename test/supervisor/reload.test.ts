// Hot reload through the master (SIGHUP and `leaky reload`): a valid config changes routes and the log level in
// place without closing a client's connection; an invalid one leaves the old config serving, exits 1 with
// file:line:col errors, logs one error line and counts the failure; settings that need an upgrade are named.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { Client, request } from 'undici'
import { startMaster } from '../fixtures/supervisor/master.js'

const UP = `upstreams:
  stub: { provider: openai, targets: [embedded] }
`
const V1 = `${UP}routes:
  - { path: /v1/, upstream: stub }
`
const V2 = `${UP}routes:
  - { path: /v1/, upstream: stub }
  - { path: /v2/, upstream: stub, strip_prefix: true }
`
const BAD = `${UP}routes:
  - { path: /v1/, upstream: stub }
  - { path: /v2/, upstream: stbu }
`

const m = await startMaster(V1)
t.teardown(() => m.proxy.stop())
const base = m.proxy.url('')
const current = () => readFileSync(m.configFile, 'utf8')

t.test('valid reload: new route serves on the same keep-alive connection; nothing reconnects', async (t) => {
  const client = new Client(base, { pipelining: 1 })
  t.teardown(() => client.close())
  let connects = 0
  client.on('connect', () => connects++)
  const before = await client.request({ path: '/v2/v1/models', method: 'GET' })
  await before.body.text()
  t.equal(before.statusCode, 404, 'no /v2/ route yet')
  m.rewrite(current().replace(V1, V2))
  const r = await m.cli('reload')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /reloaded: generation 1, config version 2; changed: routes/)
  const after = await client.request({ path: '/v2/v1/models', method: 'GET' })
  await after.body.text()
  t.equal(after.statusCode, 200, 'the new route serves')
  t.equal(connects, 1, 'the same connection carried both requests')
  const line = await m.waitLog((l) => l.msg === 'reloaded')
  t.same(line.applied, ['routes'])
})

t.test('invalid reload: old config keeps serving; exit 1 with line:col; one error line; counted', async (t) => {
  const good = current()
  m.rewrite(good.replace(V2, BAD))
  const r = await m.cli('reload')
  t.equal(r.code, 1)
  t.match(r.stderr, /leaky\.yaml:\d+:\d+ routes\[1\]\.upstream: .*stbu/, 'file:line:col path: message')
  t.match(r.stderr, /reload failed; the running config stays in force/)
  const res = await request(`${base}/v2/v1/models`)
  await res.body.text()
  t.equal(res.statusCode, 200, 'the /v2/ route of the old config still serves')
  const errs = m.proxy.lines.filter((l) => l.msg === 'reload failed: config invalid, old config stays in force')
  t.equal(errs.length, 1, 'one error line')
  t.match((errs[0].errors as string[])[0], /leaky\.yaml:\d+:\d+/)
  const st = await m.status()
  t.equal(st.supervisor.reloads_failed, 1)
  t.equal(st.supervisor.reloads_ok, 1)
  const ready = await request(`http://127.0.0.1:${m.proxy.adminPort}/ready`)
  const body = (await ready.body.json()) as { supervisor: { reloads_failed: number } }
  t.equal(body.supervisor.reloads_failed, 1, '/ready shows the failure count')
  const metrics = await request(`http://127.0.0.1:${m.proxy.adminPort}/metrics`)
  t.match(await metrics.body.text(), /^leaky_config_reloads_total\{result="failure"\} 1$/m, 'and /metrics')
  m.rewrite(good)
})

t.test('SIGHUP reloads too; log level changes in place; listen and workers are named as needing an upgrade', async (t) => {
  const good = current()
  m.rewrite(good.replace('log: { level: info }', 'log: { level: warn }').replace('workers: 2', 'workers: 3').replace('listen: 127.0.0.1:0', 'listen: 127.0.0.1:1'))
  process.kill(m.pid, 'SIGHUP')
  const warn = await m.waitLog((l) => typeof l.msg === 'string' && l.msg.startsWith('reload: these changes take effect only after'))
  t.same((warn.settings as string[]).sort(), ['listen', 'workers'])
  const quiet = await request(`${base}/v1/models`)
  await quiet.body.text()
  t.equal(quiet.statusCode, 200, 'still serving on the old port with the old workers')
  const st = await m.status()
  t.equal(st.generations[0].status?.workers, 2)
  t.equal(st.supervisor.reloads_ok, 2)
  // back to info: the next request's access line shows up, the one made at level warn never did
  m.rewrite(good)
  const r = await m.cli('reload')
  t.equal(r.code, 0, r.stderr)
  const loud = await request(`${base}/v1/models`)
  await loud.body.text()
  await m.waitLog((l) => l.msg === 'access' && l.req_id === loud.headers['x-request-id'])
  t.notOk(m.proxy.access().some((l) => l.req_id === quiet.headers['x-request-id']), 'no access line at level warn')
})

t.test('status: a readable table and --json', async (t) => {
  const table = await m.cli('status')
  t.equal(table.code, 0, table.stderr)
  t.match(table.stdout, /GEN\s+PID\s+STATE\s+UPTIME\s+WORKERS\s+IN-FLIGHT\s+REQUESTS\s+CONFIG\s+BUCKETS/)
  t.match(table.stdout, /\n1\s+\d+\s+serving\s+\S+\s+2\/2\s+0\s+\d+\s+v4\s+\d+\/65536/)
  t.match(table.stdout, /reloads: 3 ok, 1 failed/)
  const json = await m.cli('status', '--json')
  t.equal(json.code, 0)
  const s = JSON.parse(json.stdout)
  t.equal(s.master.pid, m.pid)
  t.equal(s.generations[0].role, 'current')
  t.ok(s.generations[0].status.requests >= 5)
})

t.test('test hooks are refused unless LEAKY_TEST_HOOKS=1', async (t) => {
  t.match(await m.ctl({ cmd: 'crash-worker', index: 0 }), { ok: false, error: /test hooks are off/ })
})
