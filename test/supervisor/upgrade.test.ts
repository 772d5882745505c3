// Zero-downtime upgrade through the master: the new generation joins the port with the old one's buckets; a
// request that reaches the draining old generation on a kept-alive connection is served with Connection: close and
// its charge reaches the new generation (final delta); a new generation that cannot start is killed and the old one
// keeps serving, `leaky upgrade` exits 1 with the reason; `leaky stop` drains and removes the pid file.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { Client, request } from 'undici'
import { startMaster } from '../fixtures/supervisor/master.js'

// drain_timeout: long enough that generation 1 is still draining when a loaded machine gets to the third request
const m = await startMaster(`drain_timeout: 60s
log: { level: debug }
limits:
  three: { per: ip, requests: 3/hour, burst: 3 }
upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /limited/, upstream: stub, strip_prefix: true, limits: [three] }
  - { path: /v1/, upstream: stub }
`)
t.teardown(() => m.proxy.stop())
const base = m.proxy.url('')
const good = readFileSync(m.configFile, 'utf8')

async function get(p: string): Promise<number> {
  const r = await request(`${base}${p}`)
  await r.body.text()
  return r.statusCode
}

t.test('upgrade: buckets handed over; the old generation\'s last charge merged; Connection: close while draining', async (t) => {
  // two connections on the same worker: a worker with nothing in flight finishes its drain at once and closes
  // its idle connections, so the kept-alive one must share the streaming one's worker to reach a draining worker
  const clients: Client[] = []
  t.teardown(() => Promise.all(clients.map((c) => (c.destroyed ? undefined : c.close()))))
  const seen = new Map<number, Client>()
  let pair: [Client, Client] | null = null
  while (pair === null) {
    // undici closes a connection idle for 4 s by default, and an upgrade on a loaded machine takes longer
    const c = new Client(base, { pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 })
    clients.push(c)
    const r = await c.request({ path: '/v1/models', method: 'GET' })
    await r.body.text()
    const line = await m.waitLog((l) => l.msg === 'access' && l.req_id === r.headers['x-request-id'])
    const other = seen.get(line.worker as number)
    if (other !== undefined) pair = [other, c]
    else seen.set(line.worker as number, c)
  }
  const [streamer, kept] = pair
  for (let i = 0; i < 2; i++) {
    const r = await kept.request({ path: '/limited/v1/models', method: 'GET' })
    await r.body.text()
    t.equal(r.statusCode, 200, `charge ${i + 1} of 3 in generation 1`)
  }
  // a slow stream (40 s) keeps that worker of generation 1 draining after the switch, until we drop it
  const stream = await streamer.request({
    path: '/v1/chat/completions',
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-tps': '5' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 200 }),
  })
  const text = stream.body.text().catch(() => 'dropped')
  const up = await m.cli('upgrade')
  t.equal(up.code, 0, up.stderr)
  t.match(up.stdout, /upgraded: generation 2 \(pid \d+\) serves; generation 1 is draining/)
  const third = await kept.request({ path: '/limited/v1/models', method: 'GET' })
  await third.body.text()
  t.equal(third.statusCode, 200, 'served by the draining generation, not refused')
  t.equal(third.headers.connection, 'close', 'and told to reconnect')
  const line = await m.waitLog((l) => l.msg === 'access' && l.req_id === third.headers['x-request-id'])
  t.equal(line.gen, 1)
  await streamer.destroy()
  await text
  const merged = await m.waitLog((l) => l.msg === 'merged charges of a draining generation' && l.buckets === 1)
  t.equal(merged.gen, 2, 'the draining generation\'s charge reached generation 2')
  t.equal(await get('/limited/v1/models'), 429, 'generation 2 counts all three charges')
  const exited = await m.waitLog((l) => l.msg === 'previous generation drained and exited')
  t.same([exited.generation, exited.cut], [1, 0], 'nothing cut: the stream ended when we dropped it')
  const st = await m.status()
  t.same(st.generations.map((g) => [g.role, g.number]), [['current', 2]])
  t.equal(st.supervisor.upgrades_ok, 1)
  const ready = await request(`http://127.0.0.1:${st.generations[0].status!.admin_port}/ready`)
  t.equal(ready.statusCode, 200, 'the new generation serves the admin listener')
  await ready.body.text()
})

t.test('an upgrade whose new generation cannot start: killed, the old one keeps serving, exit 1 with the reason', async (t) => {
  m.rewrite(good.replace('upstream: stub }', 'upstream: nowhere }'))
  const before = await m.genPid()
  const up = await m.cli('upgrade')
  t.equal(up.code, 1)
  t.match(up.stderr, /leaky\.yaml:\d+:\d+ routes\[1\]\.upstream: /)
  t.match(up.stderr, /leaky: upgrade failed: 1 error in .*leaky\.yaml; the running generation keeps serving/)
  t.equal(await get('/v1/models'), 200)
  const st = await m.status()
  t.same(st.generations.map((g) => [g.role, g.pid]), [['current', before]], 'only the old generation is left')
  t.equal(st.supervisor.upgrades_failed, 1)
  m.rewrite(good)
})

t.test('leaky stop: drains, exits 0, removes the pid file and the control socket', async (t) => {
  const r = await m.cli('stop')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /stopped \(master \d+\)/)
  t.equal(await m.proxy.exited, 0)
  t.notOk(existsSync(m.pidFile))
  t.notOk(existsSync(m.socket))
  const gone = await m.cli('status')
  t.equal(gone.code, 1)
  t.match(gone.stderr, /no running master/)
})
