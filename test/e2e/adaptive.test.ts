// Adaptive concurrency (README "Upstreams and traffic"): the real proxy (2 workers, so the limit must be one for
// both threads) in front of plain HTTP servers started here. One holds its answers until the test releases them
// (the priority shares, exactly); one answers slower the more requests it has in flight, as an overloaded
// provider does (the limit follows the latency, and the bounds hold where it counts: at the upstream).
import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { request } from 'undici'
import { startProxy, baseConfig, metricValue, scrapeMetrics, answer, type Answer } from '../helpers/proxy.js'

class Held {
  server: http.Server
  hits = 0
  held: http.ServerResponse[] = []
  hold = true
  #arrivals: Array<{ n: number; resolve: () => void }> = []
  constructor() {
    this.server = http.createServer((_req, res) => {
      this.hits++
      if (this.hold) this.held.push(res)
      else res.writeHead(200).end('ok')
      this.#arrivals = this.#arrivals.filter((a) => (this.hits >= a.n ? (a.resolve(), false) : true))
    })
  }
  arrived(n: number): Promise<void> {
    return this.hits >= n ? Promise.resolve() : new Promise((resolve) => this.#arrivals.push({ n, resolve }))
  }
  release(): void {
    this.hold = false
    for (const r of this.held) r.writeHead(200).end('ok')
    this.held = []
  }
}

/** Answers after BASE_MS × (requests in flight here / 2), at least BASE_MS: queueing, as seen from outside. */
const BASE_MS = 25
class Slow {
  server: http.Server
  inflight = 0
  peak = 0
  constructor() {
    this.server = http.createServer((_req, res) => {
      this.inflight++
      if (this.inflight > this.peak) this.peak = this.inflight
      const ms = BASE_MS * Math.max(1, this.inflight / 2)
      setTimeout(() => {
        this.inflight--
        res.writeHead(200).end('ok')
      }, ms)
    })
  }
}

const held = new Held()
const slow = new Slow()
for (const s of [held.server, slow.server]) {
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
}
const origin = (s: http.Server): string => `http://127.0.0.1:${(s.address() as net.AddressInfo).port}`

const proxy = await startProxy(baseConfig(`tiers:
  gold: { priority: 2 }
  bronze: { priority: 0 }
keys:
  - { id: g, key: lk-gold, tier: gold }
  - { id: b, key: lk-bronze, tier: bronze }
upstreams:
  fixed:
    targets: ["${origin(held.server)}"]
    adaptive: { min: 4, max: 4, headroom: 50 }
  slow:
    targets: ["${origin(slow.server)}"]
    max_inflight: 12
    adaptive: { min: 2, max: 16, headroom: 50 }
routes:
  - { path: /fixed/, upstream: fixed, strip_prefix: true, auth: key }
  - { path: /slow/, upstream: slow, strip_prefix: true, auth: key }
`))
t.teardown(async () => {
  held.release()
  await proxy.stop()
  for (const s of [held.server, slow.server]) {
    s.closeAllConnections()
    s.close()
  }
})

const get = (path: string, key: string): Promise<Answer> => answer(proxy.url(path), { headers: { authorization: `Bearer ${key}` } })

const SHED: Answer = { status: 503, code: 'LEAKY_OVERLOADED', retryAfter: '1' }

t.test('limit 4, headroom 50 %: bronze may fill 2 places, gold all 4; beyond, 503 LEAKY_OVERLOADED counted by tier', async (t) => {
  const bronze = [get('/fixed/x', 'lk-bronze'), get('/fixed/x', 'lk-bronze')]
  await held.arrived(2)
  t.same(await get('/fixed/x', 'lk-bronze'), SHED, 'a third bronze request is shed: the rest is kept for gold')
  const gold = [get('/fixed/x', 'lk-gold'), get('/fixed/x', 'lk-gold')]
  await held.arrived(4)
  t.equal(held.hits, 4, 'gold is served while bronze is shed')
  t.same(await get('/fixed/x', 'lk-gold'), SHED, 'gold too, once the whole limit is in flight')
  t.equal(held.hits, 4, 'never more than the limit at the upstream')
  const m = await scrapeMetrics(proxy)
  t.equal(metricValue(m, 'leaky_upstream_concurrency_limit', 'upstream="fixed"'), 4)
  t.equal(metricValue(m, 'leaky_adaptive_shed_total', 'tier="bronze"'), 1)
  t.equal(metricValue(m, 'leaky_adaptive_shed_total', 'tier="gold"'), 1)
  t.equal(metricValue(m, 'leaky_upstream_inflight', 'upstream="fixed"'), 4)
  const st = await (await request(`http://127.0.0.1:${proxy.adminPort}/status.json`)).body.json() as { providers: Array<{ upstream: string; concurrency_limit: number | null }> }
  t.equal(st.providers.find((p) => p.upstream === 'fixed')?.concurrency_limit, 4, '/status.json shows the limit')
  held.release()
  t.same((await Promise.all([...bronze, ...gold])).map((r) => r.status), [200, 200, 200, 200])
  t.equal((await get('/fixed/x', 'lk-bronze')).status, 200, 'places given back')
})

t.test('overload against a slowing upstream: the limit shrinks from 16, the bulkhead (12) and the limit hold at the upstream, bronze is shed first', async (t) => {
  // a quiet start teaches the limit the upstream's latency without load
  for (let i = 0; i < 12; i++) t.equal((await get('/slow/x', 'lk-gold')).status, 200)
  t.equal(metricValue(await scrapeMetrics(proxy), 'leaky_upstream_concurrency_limit', 'upstream="slow"'), 16, 'not loaded: the initial limit (max)')
  const counts = { gold: { ok: 0, shed: 0 }, bronze: { ok: 0, shed: 0 } }
  // 24 bronze and 4 gold clients, each 15 requests one after the other: twice what the upstream's bulkhead admits
  const client = async (tier: 'gold' | 'bronze'): Promise<void> => {
    for (let i = 0; i < 15; i++) {
      const r = await get('/slow/x', `lk-${tier}`)
      if (r.status === 200) counts[tier].ok++
      else if (r.status === 503 && r.code === 'LEAKY_OVERLOADED' && r.retryAfter === '1') counts[tier].shed++
      else t.fail(`unexpected answer ${JSON.stringify(r)}`)
    }
  }
  await Promise.all([...Array.from({ length: 24 }, () => client('bronze')), ...Array.from({ length: 4 }, () => client('gold'))])
  const m = await scrapeMetrics(proxy)
  const limit = metricValue(m, 'leaky_upstream_concurrency_limit', 'upstream="slow"')
  t.ok(limit >= 2 && limit < 16, `the limit followed the latency down: ${limit}`)
  t.ok(slow.peak <= 12, `in flight at the upstream never above the bulkhead (12) nor the limit (at most 16): peak ${slow.peak}`)
  t.ok(counts.bronze.shed > 0, `bronze shed: ${JSON.stringify(counts.bronze)}`)
  t.ok(counts.gold.shed / 60 < counts.bronze.shed / 360, `gold shed less: ${JSON.stringify(counts)}`)
  t.equal(metricValue(m, 'leaky_adaptive_shed_total', 'upstream="slow",tier="bronze"'), counts.bronze.shed, 'the counter agrees with the clients')
  t.equal(metricValue(m, 'leaky_upstream_inflight', 'upstream="slow"'), 0, 'every place given back')
})
