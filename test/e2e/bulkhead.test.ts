// Bulkheads (max_inflight per upstream and per route) and the retry budget, end to end (README "Upstreams and
// traffic"): the real proxy (2 workers, so the bounds must hold across threads) in front of plain HTTP servers
// started here that hold their answers until the test releases them.
import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { request } from 'undici'
import { startProxy, baseConfig, answer, type Answer } from '../helpers/proxy.js'

class Held {
  server: http.Server
  hits = 0
  held: http.ServerResponse[] = []
  hold = true
  status = 200
  #arrivals: Array<{ n: number; resolve: () => void }> = []
  constructor() {
    this.server = http.createServer((_req, res) => {
      this.hits++
      if (this.hold) this.held.push(res)
      else res.writeHead(this.status).end(String(this.status))
      this.#arrivals = this.#arrivals.filter((a) => (this.hits >= a.n ? (a.resolve(), false) : true))
    })
  }
  arrived(n: number): Promise<void> {
    return this.hits >= n ? Promise.resolve() : new Promise((resolve) => this.#arrivals.push({ n, resolve }))
  }
  release(): void {
    this.hold = false
    for (const r of this.held) r.writeHead(this.status).end(String(this.status))
    this.held = []
  }
  get origin(): string {
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`
  }
}

const up = new Held()
const routed = new Held()
const failing = new Held()
for (const h of [up, routed, failing]) {
  h.server.listen(0, '127.0.0.1')
  await once(h.server, 'listening')
}
failing.status = 503

const proxy = await startProxy(baseConfig(`upstreams:
  small:
    targets: ["${up.origin}"]
    max_inflight: 4
  wide:
    targets: ["${routed.origin}"]
  failing:
    targets: ["${failing.origin}"]
    retry: { attempts: 3, backoff: 300ms..400ms, on: [503], budget: 20, min_retries: 1 }
routes:
  - { path: /a/, upstream: small, strip_prefix: true }
  - { path: /b/, upstream: small, strip_prefix: true }
  - { path: /r/, upstream: wide, strip_prefix: true, max_inflight: 2 }
  - { path: /f/, upstream: failing, strip_prefix: true }
`))
t.teardown(async () => {
  for (const h of [up, routed, failing]) h.release()
  await proxy.stop()
  for (const h of [up, routed, failing]) {
    h.server.closeAllConnections()
    h.server.close()
  }
})

const get = (path: string): Promise<Answer> => answer(proxy.url(path))
async function metrics(): Promise<string> {
  return (await request(`http://127.0.0.1:${proxy.adminPort}/metrics`)).body.text()
}

t.test('upstream max_inflight: 4 in flight across both routes and both workers, the rest 503 LEAKY_OVERLOADED', async (t) => {
  const all = Array.from({ length: 10 }, (_, i) => get(i % 2 === 0 ? '/a/x' : '/b/x'))
  await up.arrived(4)
  // the 6 beyond the bound are answered while the 4 are still held
  const settled: Array<{ status: number; code: string | null; retryAfter: unknown }> = []
  for (const p of all) void p.then((r) => settled.push(r))
  while (settled.length < 6) await new Promise((r) => setTimeout(r, 10))
  t.equal(up.hits, 4, 'exactly max_inflight reached the upstream')
  for (const r of settled) t.same(r, { status: 503, code: 'LEAKY_OVERLOADED', retryAfter: '1' })
  t.match(await metrics(), /leaky_upstream_inflight\{upstream="small"\} 4\n/)
  up.release()
  const res = await Promise.all(all)
  t.equal(res.filter((r) => r.status === 200).length, 4)
  t.match(await metrics(), /leaky_bulkhead_shed_total\{upstream="small"\} 6\n/)
  t.match(await metrics(), /leaky_upstream_inflight\{upstream="small"\} 0\n/, 'every place given back')
  t.equal((await get('/a/x')).status, 200, 'free again')
})

t.test('route max_inflight: 2 in flight on the route', async (t) => {
  const all = Array.from({ length: 5 }, () => get('/r/x'))
  await routed.arrived(2)
  const shed = (await Promise.race([Promise.all(all), new Promise<null>((r) => setTimeout(() => r(null), 0))]))
  t.equal(shed, null, 'the two held requests are still in flight')
  const results: number[] = []
  for (const p of all) void p.then((r) => results.push(r.status))
  while (results.length < 3) await new Promise((r) => setTimeout(r, 10))
  t.same(results, [503, 503, 503])
  t.equal(routed.hits, 2)
  routed.release()
  t.same((await Promise.all(all)).map((r) => r.status).sort(), [200, 200, 503, 503, 503])
})

t.test('retry budget: 10 requests failing at once retry at most 20 % of them, not 10 × 3', async (t) => {
  const all = Array.from({ length: 10 }, () => get('/f/x'))
  await failing.arrived(10)
  failing.release()
  const res = await Promise.all(all)
  t.ok(res.every((r) => r.status === 503), 'each ends with the upstream\'s 503')
  const retried = failing.hits - 10
  t.ok(retried <= 3 * 3, `${retried} retries sent (without a budget: 30)`)
  const m = /leaky_retry_budget_denied_total\{upstream="failing"\} (\d+)\n/.exec(await metrics())
  t.ok(m !== null && Number(m[1]) >= 7, `retries refused by the budget: ${m?.[1]}`)
})
