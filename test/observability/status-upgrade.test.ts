// /status.json through a real master (issue #13, item 10): the latency series shows a short burst as soon as the
// next sample is taken, and `leaky upgrade` keeps the history — the new generation's series starts with the old
// generation's points, same seconds, same values — and the uptime, which counts from when the service began to serve.
import t, { type Test } from 'tap'
import { Agent, request, type Dispatcher } from 'undici'
import { startMaster } from '../fixtures/supervisor/master.js'

const m = await startMaster(`limits:
  ip-rps: { per: ip, requests: 1000/s, burst: 1000 }
upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub, limits: [ip-rps] }
`)
t.teardown(() => m.proxy.stop())

interface Series { t: number[]; rps: number[]; p50_ms: Array<number | null>; p99_ms: Array<number | null>; limited_ps: number[] }
interface Status { generation: number; uptime_s: number; series: Series; models: Array<{ model: string; total: number }> }

async function status(adminPort: number): Promise<Status> {
  const r = await request(`http://127.0.0.1:${adminPort}/status.json`)
  return (await r.body.json()) as Status
}

/**
 * The sampler takes a sample a second: poll (cheaply) until one taken after `after` (s since the epoch) is in. Points
 * carry whole seconds, rounded: one that says after + 0.5 or later was taken after `after`.
 */
async function sampleAfter(adminPort: number, after: number): Promise<Status> {
  for (;;) {
    const s = await status(adminPort)
    if (s.series.t.some((x) => x >= after + 0.5)) return s
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

async function burst(t: Test, n: number, dispatcher?: Dispatcher): Promise<void> {
  await Promise.all(Array.from({ length: n }, async () => {
    const r = await request(m.proxy.url('/v1/chat/completions'), {
      method: 'POST', headers: { 'content-type': 'application/json' }, dispatcher,
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
    })
    await r.body.dump()
    t.equal(r.statusCode, 200)
  }))
}

let before: Status | null = null

t.test('a short burst shows in the latency series at the next sample', async (t) => {
  const quiet = await sampleAfter(m.proxy.adminPort, 0)
  const last = quiet.series.t.at(-1)!
  await burst(t, 5)
  const s = await sampleAfter(m.proxy.adminPort, Date.now() / 1000)
  // requests and their latencies are counted together, when each completes: the second that counted the burst has both
  const i = s.series.t.findIndex((x, k) => x > last && s.series.rps[k] > 0)
  t.ok(i >= 0, `the burst is in the series: ${JSON.stringify(s.series)}`)
  t.type(s.series.p50_ms[i], 'number', 'p50 of the burst is there')
  t.type(s.series.p99_ms[i], 'number', 'and p99')
  // a second burst one sample later, so the history has more than one busy second
  await burst(t, 3)
  before = await sampleAfter(m.proxy.adminPort, Date.now() / 1000)
})

t.test('leaky upgrade keeps the series and the uptime', async (t) => {
  const old = before!
  t.equal(old.generation, 1)
  const busy = old.series.rps.filter((r) => r > 0).length
  t.ok(busy >= 2, `${busy} busy seconds before the upgrade`)
  const up = (await m.ctl({ cmd: 'upgrade' })) as { ok: boolean; admin_port: number; generation: number }
  t.equal(up.ok, true, JSON.stringify(up))
  const now = await status(up.admin_port)
  t.equal(now.generation, 2, 'the new generation answers')
  t.ok(now.uptime_s >= old.uptime_s, `uptime ${old.uptime_s} s before, ${now.uptime_s} s after: not reset`)
  t.ok(now.series.t.length >= old.series.t.length, `${old.series.t.length} points before, ${now.series.t.length} after`)
  // every point generation 1 showed is still there, same second, same values
  const missing: string[] = []
  old.series.t.forEach((sec, i) => {
    const j = now.series.t.indexOf(sec)
    const same = j >= 0 && now.series.rps[j] === old.series.rps[i] && now.series.p50_ms[j] === old.series.p50_ms[i] &&
      now.series.p99_ms[j] === old.series.p99_ms[i] && now.series.limited_ps[j] === old.series.limited_ps[i]
    if (!same) missing.push(`${sec}: ${old.series.rps[i]} req/s, p50 ${old.series.p50_ms[i]}`)
  })
  t.same(missing, [], 'generation 1\'s points in generation 2\'s series')
  const total = (s: Status) => s.models.find((x) => x.model === 'gpt-4o-mini')?.total ?? 0
  t.ok(total(now) >= total(old) && total(old) > 0, `token total ${total(old)} before, ${total(now)} after`)
  // and it keeps going: generation 2's own traffic lands after the inherited points. New connections: a request on
  // one kept alive from before the upgrade may still be served (with Connection: close) by the draining generation 1
  const fresh = new Agent()
  t.teardown(() => fresh.close())
  await burst(t, 2, fresh)
  const later = await sampleAfter(up.admin_port, Date.now() / 1000)
  t.ok(later.series.rps.slice(old.series.t.length).some((r) => r > 0), 'generation 2\'s requests counted as its own')
})
