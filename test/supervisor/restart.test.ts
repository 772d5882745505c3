// Failures inside a running proxy: a generation killed with -9 is restarted by the master at once, on the same
// port, with the buckets of its last snapshot; a worker thread that dies is replaced by its generation while the
// other worker's connections (and a stream on one of them) carry on.
import t from 'tap'
import { Client, request } from 'undici'
import { startMaster } from '../fixtures/supervisor/master.js'

const m = await startMaster(
  `stub: { tokens_per_second: 40 }
limits:
  three: { per: ip, requests: 3/hour, burst: 3 }
upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /limited/, upstream: stub, strip_prefix: true, limits: [three] }
  - { path: /v1/, upstream: stub }
`,
  { LEAKY_TEST_HOOKS: '1' },
)
t.teardown(() => m.proxy.stop())
const base = m.proxy.url('')

async function get(p: string): Promise<number> {
  const r = await request(`${base}${p}`)
  await r.body.text()
  return r.statusCode
}

t.test('kill -9 of the generation: restarted at once on the same port, buckets from the last snapshot', async (t) => {
  const codes = []
  for (let i = 0; i < 4; i++) codes.push(await get('/limited/v1/models'))
  t.same(codes, [200, 200, 200, 429], 'the bucket is full')
  const charged = Date.now()
  // the master's copy of the buckets is at most a second old: wait for one taken after the charges
  while (((await m.status()).last_snapshot_ms ?? 0) <= charged) await new Promise((r) => setTimeout(r, 100))
  const pid = await m.genPid()
  const killedAt = Date.now()
  process.kill(pid, 'SIGKILL')
  const died = await m.waitLog((l) => l.msg === 'generation died; restarting it')
  t.equal(died.restart_in_ms, 0, 'no back-off for a first death')
  t.ok(Date.parse(died.time as string) - killedAt < 1000, 'the master starts the restart within 1 s')
  const back = await m.waitLog((l) => l.msg === 'generation restarted')
  const ms = Date.parse(back.time as string) - killedAt
  t.comment(`kill -9 → new generation serving: ${ms} ms`)
  t.equal(back.port, m.proxy.port, 'same port')
  t.not(await m.genPid(), pid)
  t.equal(await get('/limited/v1/models'), 429, 'the restored bucket is still full')
  t.equal(await get('/v1/models'), 200)
  const st = await m.status()
  t.equal(st.supervisor.restarts, 1)
  t.equal(st.supervisor.crash_loop, false)
})

t.test('a worker thread dies: replaced; the other worker\'s connections and its stream carry on', async (t) => {
  // one client per connection; the access log says which worker served each
  const byWorker = new Map<number, Client>()
  const all: Client[] = []
  t.teardown(() => Promise.all(all.map((c) => c.close())))
  for (let i = 0; i < 40 && byWorker.size < 2; i++) {
    const c = new Client(base, { pipelining: 1 })
    all.push(c)
    const r = await c.request({ path: '/v1/models', method: 'GET' })
    await r.body.text()
    const line = await m.waitLog((l) => l.msg === 'access' && l.req_id === r.headers['x-request-id'])
    if (!byWorker.has(line.worker as number)) byWorker.set(line.worker as number, c)
  }
  t.equal(byWorker.size, 2, 'a connection on each worker')
  const survivor = byWorker.get(0)!
  let connects = 0
  survivor.on('connect', () => connects++)
  const stream = await survivor.request({
    path: '/v1/chat/completions',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 40 }),
  })
  t.equal(stream.statusCode, 200)
  const text = stream.body.text()
  t.same(await m.ctl({ cmd: 'crash-worker', index: 1 }), { ok: true })
  const replaced = await m.waitLog((l) => l.msg === 'worker exited unexpectedly; replacing it')
  t.equal(replaced.worker, 1)
  t.match(await text, /data: \[DONE\]/, 'the stream on worker 0 completed')
  const again = await survivor.request({ path: '/v1/models', method: 'GET' })
  await again.body.text()
  t.equal(again.statusCode, 200)
  t.equal(connects, 0, 'worker 0\'s connection was never closed')
  let st = await m.status()
  while (st.generations[0].status!.workers_up < 2) st = await m.status()
  t.equal(st.generations[0].status!.worker_restarts, 1)
  for (let i = 0; i < 6; i++) t.equal(await get('/v1/models'), 200, 'new connections are served by both workers')
})
