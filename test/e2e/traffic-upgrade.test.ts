// The target table across a zero-downtime upgrade (README "Upstreams and traffic"): the real proxy (2 workers) in
// front of two plain HTTP servers started here, one of them failing; once it is ejected, an upgrade (SIGUSR2) hands
// the ejection to the new generation with the buckets, and the new generation sends it nothing.
import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { request } from 'undici'
import { startProxy, baseConfig } from '../helpers/proxy.js'

const hits = { good: 0, bad: 0 }
const good = http.createServer((_req, res) => {
  hits.good++
  res.end('good')
})
const bad = http.createServer((_req, res) => {
  hits.bad++
  res.writeHead(503).end('bad')
})
for (const s of [good, bad]) {
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
}
const origin = (s: http.Server): string => `http://127.0.0.1:${(s.address() as net.AddressInfo).port}`

const proxy = await startProxy(baseConfig(`upstreams:
  u:
    targets: ["${origin(good)}", "${origin(bad)}"]
    outlier: { consecutive_failures: 2, base_ejection: 10m }
    retry: { attempts: 1, on: [503] }
routes:
  - { path: /, upstream: u }
`))
t.teardown(async () => {
  await proxy.stop()
  for (const s of [good, bad]) {
    s.closeAllConnections()
    s.close()
  }
})

interface TargetRow { target: string; state: string; ejected_until: string | null; ejections: number }
async function badTarget(): Promise<TargetRow> {
  const st = await (await request(`http://127.0.0.1:${proxy.adminPort}/status.json`)).body.json() as { targets: TargetRow[] }
  return st.targets.find((x) => x.target === origin(bad))!
}

t.test('an ejected target stays ejected across an upgrade, until the same time', async (t) => {
  for (let i = 0; i < 200 && (await badTarget()).state !== 'ejected'; i++) {
    const r = await request(proxy.url('/x'))
    t.equal(r.statusCode, 200, 'retried on the good target: no failed request')
    await r.body.text()
  }
  const before = await badTarget()
  t.equal(before.state, 'ejected')
  t.ok(before.ejected_until !== null)

  proxy.child.kill('SIGUSR2')
  const restored = proxy.waitLog((l) => l.msg === 'targets restored', 60_000)
  const up = await proxy.waitLog((l) => l.msg === 'upgraded', 60_000)
  t.equal(up.generation, 2)
  proxy.adminPort = up.admin_port as number
  t.ok(((await restored).restored as number) >= 3, 'two targets and the account taken over')
  t.same(await badTarget(), { ...before, inflight: 0 }, 'still ejected, until the same time')

  const badHits = hits.bad
  for (let i = 0; i < 20; i++) {
    const r = await request(proxy.url('/x'))
    t.equal(await r.body.text(), 'good')
  }
  t.equal(hits.bad, badHits, 'the new generation sends the ejected target nothing')
})
