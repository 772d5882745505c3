// The bulkhead's wait queue (`queue: { size, timeout }` beside an upstream's `max_inflight`, README "Upstreams and
// traffic"), end to end: the real proxy (2 workers: the queue's size is one bound for both) in front of plain HTTP
// servers started here that hold their answers until the test releases them.
import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { startProxy, baseConfig, metricValue, scrapeMetrics, answer, type Answer } from '../helpers/proxy.js'

class Held {
  server: http.Server
  hits = 0
  paths: string[] = []
  held: http.ServerResponse[] = []
  #arrivals: Array<{ n: number; resolve: () => void }> = []
  constructor() {
    this.server = http.createServer((req, res) => {
      this.hits++
      this.paths.push(req.url ?? '')
      this.held.push(res)
      this.#arrivals = this.#arrivals.filter((a) => (this.hits >= a.n ? (a.resolve(), false) : true))
    })
  }
  arrived(n: number): Promise<void> {
    return this.hits >= n ? Promise.resolve() : new Promise((resolve) => this.#arrivals.push({ n, resolve }))
  }
  releaseOne(): void {
    this.held.shift()?.writeHead(200).end('ok')
  }
  releaseAll(): void {
    for (const r of this.held) r.writeHead(200).end('ok')
    this.held = []
  }
  get inflight(): number {
    return this.held.length
  }
}

const q = new Held()
const qt = new Held()
for (const h of [q, qt]) {
  h.server.listen(0, '127.0.0.1')
  await once(h.server, 'listening')
}
const origin = (h: Held): string => `http://127.0.0.1:${(h.server.address() as net.AddressInfo).port}`

const proxy = await startProxy(baseConfig(`upstreams:
  q:
    targets: ["${origin(q)}"]
    max_inflight: 2
    queue: { size: 3, timeout: 60s }
  qt:
    targets: ["${origin(qt)}"]
    max_inflight: 1
    queue: { size: 5, timeout: 300ms }
  home:
    targets: ["http://127.0.0.1:9"]
routes:
  - { path: /q/, upstream: q, strip_prefix: true }
  - { path: /s/, upstream: home, split: [{ upstream: q, weight: 1 }], strip_prefix: true }
  - { path: /qt/, upstream: qt, strip_prefix: true }
`))
t.teardown(async () => {
  for (const h of [q, qt]) h.releaseAll()
  await proxy.stop()
  for (const h of [q, qt]) {
    h.server.closeAllConnections()
    h.server.close()
  }
})

const get = (path: string, signal?: AbortSignal): Promise<Answer> => answer(proxy.url(path), { signal })

/** Until the gauge shows `n` requests queued for the upstream (the queue is filled from other connections). */
async function queued(upstream: string, n: number): Promise<void> {
  while (metricValue(await scrapeMetrics(proxy), 'leaky_bulkhead_queued', `upstream="${upstream}"`) !== n) {
    await new Promise((r) => setTimeout(r, 20))
  }
}

const SHED: Answer = { status: 503, code: 'LEAKY_OVERLOADED', retryAfter: '1' }

t.test('beyond max_inflight (2) requests wait, at most size (3) of them; each freed place takes one; beyond, 503 at once', async (t) => {
  const first = [get('/q/1'), get('/q/2')]
  await q.arrived(2)
  const waiting = [get('/q/3'), get('/q/4'), get('/q/5')]
  await queued('q', 3)
  t.same(await get('/q/6'), SHED, 'the queue is full: 503 at once')
  t.equal(q.hits, 2, 'nothing queued reached the upstream')
  for (let n = 3; n <= 5; n++) {
    q.releaseOne()
    await q.arrived(n)
    t.equal(q.inflight, 2, `place ${n - 2} freed: one queued request takes it, max_inflight holds at the upstream`)
  }
  await queued('q', 0)
  q.releaseAll()
  t.same((await Promise.all([...first, ...waiting])).map((r) => r.status), [200, 200, 200, 200, 200])
  t.same(q.paths.slice(2).sort(), ['/3', '/4', '/5'])
  const m = await scrapeMetrics(proxy)
  t.equal(metricValue(m, 'leaky_bulkhead_shed_total', 'upstream="q"'), 1)
  t.equal(metricValue(m, 'leaky_upstream_inflight', 'upstream="q"'), 0, 'every place given back')
})

t.test('a client that goes away while waiting leaves the queue, and its request never reaches the upstream', async (t) => {
  const hits = q.hits
  const first = [get('/q/a'), get('/q/b')]
  await q.arrived(hits + 2)
  const ac = new AbortController()
  const gone = get('/q/gone', ac.signal).catch((e: Error) => e.name)
  await queued('q', 1)
  ac.abort()
  t.equal(await gone, 'AbortError')
  await queued('q', 0)
  const next = get('/q/next')
  await queued('q', 1)
  q.releaseOne()
  await q.arrived(hits + 3)
  q.releaseAll()
  t.same((await Promise.all([...first, next])).map((r) => r.status), [200, 200, 200])
  t.notOk(q.paths.includes('/gone'), 'the abandoned request was never sent')
  t.equal(q.hits, hits + 3)
})

t.test('a request that waits out the timeout gets 503 LEAKY_OVERLOADED with Retry-After', async (t) => {
  const held = get('/qt/held')
  await qt.arrived(1)
  const start = performance.now()
  t.same(await get('/qt/late'), SHED)
  const waited = performance.now() - start
  t.ok(waited >= 250, `answered after its wait, not at once: ${Math.round(waited)} ms`)
  t.equal(qt.hits, 1, 'it never reached the upstream')
  await queued('qt', 0)
  qt.releaseAll()
  t.equal((await held).status, 200)
  t.equal(metricValue(await scrapeMetrics(proxy), 'leaky_bulkhead_shed_total', 'upstream="qt"'), 1)
})

t.test('a split route counts on the side chosen for the request, not on its home upstream', async (t) => {
  const hits = q.hits
  const first = [get('/s/1'), get('/s/2')]
  await q.arrived(hits + 2)
  const waiting = get('/q/3')
  await queued('q', 1)
  t.equal(q.hits, hits + 2, 'the split side\'s two requests fill q\'s max_inflight')
  q.releaseOne()
  await q.arrived(hits + 3)
  q.releaseAll()
  t.same((await Promise.all([...first, waiting])).map((r) => r.status), [200, 200, 200])
})
