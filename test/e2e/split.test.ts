// Traffic splits, the upstream override and mirroring, end to end (README "Upstreams and traffic"): the real proxy
// (2 workers) in front of plain HTTP servers started here that record which client (x-test-client, forwarded) each
// request came from.
import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { Pool, request } from 'undici'
import { baseConfig, startProxy, writeConfig } from '../helpers/proxy.js'

class Side {
  readonly name: string
  readonly server: http.Server
  hits = 0
  readonly clients = new Set<string>()
  lastBody = ''
  constructor(name: string) {
    this.name = name
    this.server = http.createServer((req, res) => {
      this.hits++
      this.clients.add(String(req.headers['x-test-client']))
      const parts: Buffer[] = []
      req.on('data', (d: Buffer) => parts.push(d))
      req.on('end', () => {
        this.lastBody = Buffer.concat(parts).toString()
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ side: this.name }))
      })
    })
  }
  get origin(): string {
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`
  }
}

const stable = new Side('stable')
const canary = new Side('canary')
const blue = new Side('blue')
const green = new Side('green')
const shadow = new Side('shadow')
const sides = [stable, canary, blue, green, shadow]
for (const s of sides) {
  s.server.listen(0, '127.0.0.1')
  await once(s.server, 'listening')
}

const KEYS = 1000
const keys = Array.from({ length: KEYS }, (_, i) => `  - { id: k${i}, key: "key-${i}" }`).join('\n')
const config = (bg: [number, number]) => baseConfig(`upstreams:
  gpt-stable: { targets: ["${stable.origin}"] }
  gpt-canary: { targets: ["${canary.origin}"] }
  blue: { targets: ["${blue.origin}"] }
  green: { targets: ["${green.origin}"] }
  shadow: { targets: ["${shadow.origin}"] }
keys:
${keys}
routes:
  - path: /canary/
    strip_prefix: true
    auth: key
    split: [{ upstream: gpt-stable, weight: 95 }, { upstream: gpt-canary, weight: 5 }]
    upstream_override: [k1]
  - path: /bg/
    strip_prefix: true
    split: [{ upstream: blue, weight: ${bg[0]} }, { upstream: green, weight: ${bg[1]} }]
  - path: /mirror/
    upstream: gpt-stable
    strip_prefix: true
    mirror: { upstream: shadow, percent: 100 }
`)
const file = writeConfig(config([100, 0]))
const proxy = await startProxy(file)
t.teardown(async () => {
  await proxy.stop()
  for (const s of sides) {
    s.server.closeAllConnections()
    s.server.close()
  }
})

t.test('canary 5 %: 10 000 requests from 1 000 keys, share within ±1 %, no key ever on both sides', async (t) => {
  const pool = new Pool(proxy.url('/').slice(0, -1), { connections: 16 })
  t.teardown(() => pool.close())
  let failed = 0
  let next = 0
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < 10 * KEYS) {
      const k = next++ % KEYS
      const r = await pool.request({ path: '/canary/v1/x', method: 'GET', headers: { authorization: `Bearer key-${k}`, 'x-test-client': `k${k}` } })
      await r.body.dump()
      if (r.statusCode !== 200) failed++
    }
  }))
  t.equal(failed, 0)
  t.equal(stable.hits + canary.hits, 10 * KEYS)
  const share = canary.hits / (10 * KEYS)
  t.ok(share >= 0.04 && share <= 0.06, `canary share ${(share * 100).toFixed(2)} %`)
  const both = [...canary.clients].filter((c) => stable.clients.has(c))
  t.same(both, [], 'each key stayed on one side')
})

t.test('x-leaky-upstream: honoured for a key allowed to use it, ignored for the others', async (t) => {
  const ask = async (key: string) => {
    const r = await request(proxy.url('/canary/v1/x'), { headers: { authorization: `Bearer ${key}`, 'x-leaky-upstream': 'gpt-canary', 'x-test-client': 'override' } })
    return ((await r.body.json()) as { side: string }).side
  }
  const stableKey = Array.from({ length: KEYS }, (_, i) => i).find((i) => i !== 1 && stable.clients.has(`k${i}`))!
  t.equal(await ask(`key-${stableKey}`), 'stable', 'a key not listed stays where the split put it')
  t.equal(await ask('key-1'), 'canary', 'k1 may choose')
})

t.test('blue/green: 100/0 switched to 0/100 by a reload under load, no failed request', async (t) => {
  let stop = false
  let failed = 0
  let ok = 0
  const load = Promise.all(Array.from({ length: 8 }, async () => {
    while (!stop) {
      const r = await request(proxy.url('/bg/x'))
      await r.body.dump()
      if (r.statusCode === 200) ok++
      else failed++
    }
  }))
  while (ok < 200) await new Promise((r) => setTimeout(r, 10))
  t.equal(green.hits, 0, 'all on blue before')
  writeFileSync(file, config([0, 100]))
  process.kill(proxy.child.pid!, 'SIGHUP')
  await proxy.waitLog((l) => l.msg === 'reloaded')
  const blueAfter = blue.hits
  const okAfter = ok
  while (ok < okAfter + 200) await new Promise((r) => setTimeout(r, 10))
  stop = true
  await load
  t.equal(failed, 0, `0 failed of ${ok}`)
  t.ok(green.hits >= 190, `green took over (${green.hits})`)
  t.ok(blue.hits - blueAfter <= 16, 'blue got only the requests already under way at the swap')
})

t.test('mirror: the shadow upstream gets a copy, the client gets the real answer', async (t) => {
  const r = await request(proxy.url('/mirror/v1/x'), { headers: { 'x-test-client': 'm' } })
  t.same(await r.body.json(), { side: 'stable' })
  const deadline = Date.now() + 10_000
  while (shadow.hits < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  t.equal(shadow.hits, 1, 'one copy')
  t.ok(shadow.clients.has('m'), 'with the client\'s headers')
  t.equal(stable.clients.has('m'), true)
})
