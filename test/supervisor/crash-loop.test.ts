// A generation that keeps dying: the first restart is immediate, the next ones back off, and from the third death
// in a row the crash loop shows in the master's log line, in `leaky status` and on /ready of the generation that
// finally serves.
import t from 'tap'
import { request } from 'undici'
import { startMaster } from '../fixtures/supervisor/master.js'

const m = await startMaster(`upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub }
`)
t.teardown(() => m.proxy.stop())

t.test('three deaths in a row: back-off grows, crash loop reported', async (t) => {
  const delays: unknown[] = []
  for (let i = 1; i <= 3; i++) {
    const pid = await m.genPid()
    process.kill(pid, 'SIGKILL')
    const died = await m.waitLog((l) => typeof l.msg === 'string' && /generation (died|keeps dying)/.test(l.msg) && l.consecutive_crashes === i)
    delays.push(died.restart_in_ms)
    t.equal(died.crash_loop, i >= 3, `death ${i}: crash loop ${i >= 3}`)
    await m.waitLog((l) => l.msg === 'generation restarted' && l.restarts === i, 30_000)
  }
  t.same(delays, [0, 250, 500])
  const loop = m.proxy.lines.find((l) => l.msg === 'crash loop: generation keeps dying; backing off')
  t.equal(loop?.level, 'error')
  const st = await m.status()
  t.match(st.supervisor, { restarts: 3, consecutive_crashes: 3, crash_loop: true })
  const table = await m.cli('status')
  t.match(table.stdout, /generation restarts: 3 \(CRASH LOOP\)/)
  const ready = await request(`http://127.0.0.1:${st.generations[0].status!.admin_port}/ready`)
  const body = (await ready.body.json()) as { supervisor: { crash_loop: boolean; restarts: number } }
  t.match(body.supervisor, { crash_loop: true, restarts: 3 })
  const metrics = await request(`http://127.0.0.1:${st.generations[0].status!.admin_port}/metrics`)
  t.match(await metrics.body.text(), /^leaky_generation_restarts_total 3$/m, 'and /metrics')
  const res = await request(m.proxy.url('/v1/models'))
  await res.body.text()
  t.equal(res.statusCode, 200, 'serving again')
})
