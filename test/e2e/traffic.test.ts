// Balancing across an upstream's targets, passive ejection and active health checks (README "Upstreams and
// traffic"), end to end: the real proxy (2 workers) in front of plain HTTP servers started here, each counting the
// requests it gets; one of them can hold its answers, be killed and come back on the same port.
import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { request } from 'undici'
import { startProxy, baseConfig } from '../helpers/proxy.js'

class Target {
  readonly name: string
  server: http.Server
  port = 0
  hits = 0
  /** answers held until release() */
  held: http.ServerResponse[] = []
  hold = false
  /** /healthz never answers */
  hangHealth = false

  constructor(name: string) {
    this.name = name
    this.server = this.#make()
  }

  #make(): http.Server {
    return http.createServer((req, res) => {
      if (req.url?.endsWith('/healthz')) {
        if (!this.hangHealth) res.end('ok')
        return
      }
      this.hits++
      if (this.hold) this.held.push(res)
      else res.end(this.name)
    })
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async listen(port = 0): Promise<void> {
    this.server.listen(port, '127.0.0.1')
    await once(this.server, 'listening')
    this.port = (this.server.address() as net.AddressInfo).port
  }

  release(): void {
    this.hold = false
    for (const r of this.held) r.end(this.name)
    this.held = []
  }

  /** Gone: listener closed, every connection cut (requests in flight on it are reset). */
  async kill(): Promise<void> {
    this.server.closeAllConnections()
    const closed = once(this.server, 'close')
    this.server.close()
    this.server.closeAllConnections()
    await closed
  }

  /** Back on the same port. */
  async revive(): Promise<void> {
    this.server = this.#make()
    await this.listen(this.port)
  }
}

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

const fast1 = new Target('fast1')
const fast2 = new Target('fast2')
const slow = new Target('slow')
const w3 = new Target('w3')
const w1 = new Target('w1')
const k = [new Target('k0'), new Target('k1'), new Target('k2')]
const hang = new Target('hang')
const good = new Target('good')
const fb = new Target('fb')
const alive = new Target('alive')
for (const x of [fast1, fast2, slow, w3, w1, ...k, hang, good, fb, alive]) await x.listen()
hang.hangHealth = true
const [dead1, dead2, dead3] = [await closedPort(), await closedPort(), await closedPort()]

const proxy = await startProxy(baseConfig(`upstreams:
  p2c:
    targets: ["${fast1.origin}", "${fast2.origin}", "${slow.origin}"]
  weighted:
    balance: weighted
    targets: [{ url: "${w3.origin}", weight: 3 }, { url: "${w1.origin}", weight: 1 }]
  killed:
    targets: ["${k[0].origin}", "${k[1].origin}", "${k[2].origin}"]
    retry: { attempts: 2, backoff: 5ms..20ms, on: [connect, reset, 502, 503] }
    outlier: { consecutive_failures: 3, base_ejection: 300ms, max_ejection: 2s }
    health: { path: /healthz, interval: 150ms, timeout: 500ms, healthy: 2, unhealthy: 2 }
  hang:
    targets: ["${hang.origin}", "${good.origin}"]
    health: { path: /healthz, interval: 100ms, timeout: 200ms, healthy: 2, unhealthy: 1 }
  alldown:
    targets: ["http://127.0.0.1:${dead1}", "http://127.0.0.1:${dead2}"]
    health: { path: /healthz, interval: 100ms, timeout: 200ms, healthy: 1, unhealthy: 1 }
  alldown-fb:
    targets: ["http://127.0.0.1:${dead1}", "http://127.0.0.1:${dead2}"]
    health: { path: /healthz, interval: 100ms, timeout: 200ms, healthy: 1, unhealthy: 1 }
    fallback: fb
  fb:
    targets: ["${fb.origin}"]
  passive:
    balance: round_robin
    targets: ["http://127.0.0.1:${dead3}", "${alive.origin}"]
    retry: { attempts: 1, backoff: 1ms..2ms, on: [connect] }
    outlier: { consecutive_failures: 2, base_ejection: 200ms, max_ejection: 1s }
routes:
  - { path: /passive/, upstream: passive, strip_prefix: true }
  - { path: /p2c/, upstream: p2c, strip_prefix: true }
  - { path: /weighted/, upstream: weighted, strip_prefix: true }
  - { path: /killed/, upstream: killed, strip_prefix: true }
  - { path: /hang/, upstream: hang, strip_prefix: true }
  - { path: /alldown/, upstream: alldown, strip_prefix: true }
  - { path: /alldown-fb/, upstream: alldown-fb, strip_prefix: true }
`))
t.teardown(async () => {
  slow.release()
  await proxy.stop()
  for (const x of [fast1, fast2, slow, w3, w1, ...k, hang, good, fb, alive]) if (x.server.listening) await x.kill()
})

async function get(path: string): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
  const r = await request(proxy.url(path))
  return { status: r.statusCode, text: await r.body.text(), headers: r.headers }
}

interface TargetState {
  upstream: string
  target: string
  state: string
  inflight: number
  ejections: number
  health_check: string | null
}
async function targets(upstream: string): Promise<TargetState[]> {
  const r = await request(`http://127.0.0.1:${proxy.adminPort}/status.json`)
  const body = (await r.body.json()) as { targets: TargetState[] }
  return body.targets.filter((x) => x.upstream === upstream)
}

t.test('p2c_least_inflight: a target that holds its answers gets few requests; the others carry the load', async (t) => {
  slow.hold = true
  const total = 60
  let next = 0
  let done = 0
  // 12 clients in a row: every request held by `slow` keeps one client waiting, so a balancer that kept sending to
  // it (round-robin: every third request) would stall all of them; least-in-flight sends it only while its in-flight
  // count (shared by both workers) is no higher than a fast target's
  async function client(): Promise<void> {
    while (next < total) {
      next++
      const r = await get('/p2c/x')
      if (r.status === 200) done++
      else t.fail(`${r.status} ${r.text}`)
    }
  }
  const clients = Promise.all(Array.from({ length: 12 }, client))
  // every request answered except those `slow` holds
  const deadline = Date.now() + 30_000
  while (done + slow.held.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  t.equal(done + slow.held.length, total, 'the fast targets answered all the rest while slow held its requests')
  t.ok(slow.hits <= 8, `slow got ${slow.hits} of ${total} (round-robin would send it ${total / 3})`)
  const st = await targets('p2c')
  t.equal(st.find((x) => x.target === slow.origin)?.inflight, slow.held.length, '/status.json shows slow\'s requests in flight')
  slow.release()
  await clients
  t.equal(fast1.hits + fast2.hits + slow.hits, total)
})

t.test('weighted: 3:1 by weight', async (t) => {
  let ok = 0
  for (let i = 0; i < 40; i++) if ((await get('/weighted/x')).status === 200) ok++
  t.equal(ok, 40)
  // smooth weighted round-robin is exact per worker thread: each worker's share is off by less than one cycle
  t.ok(Math.abs(w3.hits - 30) <= 3, `w3 got ${w3.hits} of 40`)
  t.equal(w3.hits + w1.hits, 40)
})

t.test('one of three targets killed mid-load: no failed request; ejected, then re-admitted once it is back', async (t) => {
  let stop = false
  let ok = 0
  const failed: string[] = []
  async function client(): Promise<void> {
    while (!stop) {
      const r = await get('/killed/x')
      if (r.status === 200) ok++
      else failed.push(`${r.status} ${r.text}`)
    }
  }
  const load = Promise.all(Array.from({ length: 8 }, client))
  while (ok < 200) await new Promise((r) => setTimeout(r, 10))
  t.ok(k[2].hits > 20, `k2 took its share before (${k[2].hits})`)
  const out = proxy.waitLog((l) => (l.msg === 'target ejected' || l.msg === 'target unhealthy') && l.upstream === 'killed')
  await k[2].kill()
  const line = await out
  t.match(String(line.target), String(k[2].port), `${line.msg}: the killed one`)
  // the health checker's verdict: down until 2 checks pass
  const down = await proxy.waitLog((l) => l.msg === 'target unhealthy' && l.upstream === 'killed')
  t.match(String(down.target), String(k[2].port))
  const st = await targets('killed')
  t.not(st.find((x) => x.target === k[2].origin)?.state, 'up', '/status.json: the killed target is out')
  const okWhileDown = ok
  while (ok < okWhileDown + 200) await new Promise((r) => setTimeout(r, 10))
  const hitsBefore = k[2].hits
  const back = proxy.waitLog((l) => l.msg === 'target healthy' && l.upstream === 'killed')
  await k[2].revive()
  await back
  while (k[2].hits < hitsBefore + 20) await new Promise((r) => setTimeout(r, 10))
  stop = true
  await load
  t.same(failed, [], `0 failed client requests of ${ok}`)
  t.equal((await targets('killed')).find((x) => x.target === k[2].origin)?.state, 'up', 're-admitted')
  const m = await (await request(`http://127.0.0.1:${proxy.adminPort}/metrics`)).body.text()
  t.match(m, new RegExp(`leaky_upstream_target_up\\{upstream="killed",target="${k[2].origin.replace(/[.]/g, '\\.')}",state="up"\\} 1`))
})

t.test('a health endpoint that never answers fails after its timeout; the other target serves', async (t) => {
  const line = await proxy.waitLog((l) => l.msg === 'target unhealthy' && l.upstream === 'hang')
  t.match(String(line.target), String(hang.port))
  t.match(String(line.reason), /no answer in 200 ms/)
  const before = hang.hits
  for (let i = 0; i < 10; i++) t.equal((await get('/hang/x')).text, 'good')
  t.equal(hang.hits, before, 'nothing sent to the unhealthy target')
  t.match((await targets('hang')).find((x) => x.target === hang.origin)?.health_check, /^fail: no answer/)
})

t.test('every target down: 503 LEAKY_UPSTREAM_UNAVAILABLE with Retry-After, or the fallback', async (t) => {
  for (const u of ['alldown', 'alldown-fb']) {
    await proxy.waitLog((l) => l.msg === 'target unhealthy' && l.upstream === u && String(l.target).includes(String(dead1)))
    await proxy.waitLog((l) => l.msg === 'target unhealthy' && l.upstream === u && String(l.target).includes(String(dead2)))
  }
  const r = await get('/alldown/x')
  t.equal(r.status, 503)
  t.equal(JSON.parse(r.text).error.code, 'LEAKY_UPSTREAM_UNAVAILABLE')
  t.ok(Number(r.headers['retry-after']) >= 1, `Retry-After: ${String(r.headers['retry-after'])}`)
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.path === '/alldown/x')
  t.match(String(line.detail), /no usable target: alldown/)
  const f = await get('/alldown-fb/x')
  t.equal(f.status, 200)
  t.equal(f.text, 'fb')
})

t.test('passive ejection: failures in a row eject a target, each ejection twice as long as the one before', async (t) => {
  const ejections = () => proxy.lines.filter((l) => l.msg === 'target ejected' && l.upstream === 'passive')
  let failed = 0
  let n = 0
  while (ejections().length < 3 && n < 2000) {
    n++
    if ((await get('/passive/x')).status !== 200) failed++
  }
  t.equal(failed, 0, `every one of ${n} requests answered (the retry goes to the live target)`)
  t.same(ejections().map((l) => l.ejection_ms), [200, 400, 800], 'base_ejection, then doubled each time')
  t.equal(ejections()[0].target, `http://127.0.0.1:${dead3}`)
  // while ejected, the dead target gets no attempt: the access lines of those requests name no failed attempt
  const st = (await targets('passive')).find((x) => x.target === `http://127.0.0.1:${dead3}`)
  t.equal(st?.state, 'ejected')
  t.equal(st?.ejections, 3)
})
