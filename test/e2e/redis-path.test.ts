// How cluster limits sit in the request path of one proxy (the fleet-wide accuracy and failure tests are in
// redis.test.ts): local limits decide first and a request they deny costs no Redis call; a cluster denial gives the
// local charges back; a streamed body waits, paused, while Redis decides; headers cover both kinds; a reload that
// adds a redis section and a cluster limit enforces it at once. Real redis-server, real proxy process.
import t from 'tap'
import { request } from 'undici'
import { Redis } from 'ioredis'
import { writeFileSync } from 'node:fs'
import { startProxy, baseConfig, writeConfig, type Proxy } from '../helpers/proxy.js'
import { startRedis } from '../helpers/redis.js'

const redis = await startRedis()
t.teardown(() => redis.stop())
const cli = new Redis(redis.url, { lazyConnect: false })
t.teardown(() => cli.disconnect())

const config = (withRedis: boolean) => baseConfig(`
${withRedis ? `redis: { url: "${redis.url}", timeout: 200ms }` : ''}
limits:
  loc: { per: ip, requests: 2/min, burst: 2 }
  ${withRedis ? 'clu: { per: ip, requests: 3/min, burst: 3, scope: cluster }' : ''}
  ${withRedis ? 'odd: { per: global, requests: 3/min, burst: 3, scope: cluster }' : ''}
  loc2: { per: ip, requests: 100/hour, burst: 100 }   # refills a request every 36 s: the counts below hold on a slow machine
upstreams:
  stub: { targets: [embedded] }
routes:
  - { path: /both/, upstream: stub, strip_prefix: true, limits: [loc2${withRedis ? ', clu' : ''}] }
  - { path: /localfirst/, upstream: stub, strip_prefix: true, limits: [loc${withRedis ? ', clu' : ''}] }
  - { path: /body/, upstream: stub, strip_prefix: true, limits: [${withRedis ? 'clu' : 'loc2'}] }
  - { path: /loc2/, upstream: stub, strip_prefix: true, limits: [loc2] }
  - { path: /odd/, upstream: stub, strip_prefix: true, limits: [${withRedis ? 'odd' : 'loc2'}] }
`)

const file = writeConfig(config(true))
const proxy: Proxy = await startProxy(file)
t.teardown(() => proxy.stop())

t.test('a cluster denial refunds the local charges; headers name the tightest of both', async (t) => {
  // clu (3) runs out before loc2 (100): requests 4 and 5 are denied by Redis, and loc2 must not pay for them
  for (let i = 0; i < 3; i++) {
    const r = await request(proxy.url('/both/__stub/health'))
    await r.body.dump()
    t.equal(r.statusCode, 200)
    t.equal(r.headers['x-ratelimit-limit-requests'], '3', 'the tightest limit is the cluster one')
    t.equal(r.headers['x-ratelimit-remaining-requests'], String(2 - i))
  }
  for (let i = 0; i < 2; i++) {
    const r = await request(proxy.url('/both/__stub/health'))
    const body = JSON.parse(await r.body.text())
    t.equal(r.statusCode, 429)
    t.equal(body.error.code, 'LEAKY_RATE_LIMITED')
    t.match(body.error.message, /"clu"/)
    t.equal(r.headers['ratelimit-policy'], '"clu";q=3;w=60')
  }
  // loc2 (100) was charged by the 3 admitted requests only: the probe's own charge leaves 100 - 3 - 1
  const probe = await request(proxy.url('/loc2/__stub/health'))
  await probe.body.dump()
  t.equal(probe.headers['x-ratelimit-remaining-requests'], '96', 'the two cluster denials were refunded locally')
  t.not(await cli.get('leaky:{clu}:127.0.0.1'), null, 'the cluster bucket lives in Redis under <prefix>{<limit>}:<subject>')
  const access = await proxy.waitLog((l) => l.msg === 'access' && l.status === 429 && l.limit === 'clu')
  t.equal(access.cluster, 'redis', 'the access line says Redis decided')
})

t.test('a request the local limits deny makes no Redis call', async (t) => {
  const decisions = async () => {
    const m = await request(`http://127.0.0.1:${proxy.adminPort}/metrics`)
    const text = await m.body.text()
    return Number(/^leaky_redis_decisions_total\{mode="exact"\} (\d+)$/m.exec(text)?.[1] ?? NaN)
  }
  await cli.del('leaky:{clu}:127.0.0.1')
  // loc (2/min) admits 2, then denies locally; clu (3) would still admit: only 2 decisions may reach Redis
  const d0 = await decisions()
  const codes: number[] = []
  for (let i = 0; i < 4; i++) {
    const r = await request(proxy.url('/localfirst/__stub/health'))
    const body = await r.body.text()
    codes.push(r.statusCode)
    if (r.statusCode === 429) t.match(JSON.parse(body).error.message, /"loc"/)
  }
  t.same(codes, [200, 200, 429, 429])
  // counters reach /metrics from the worker's stripe at once (Atomics), no sampling delay for these
  t.equal(await decisions() - d0, 2, 'the two local denials never asked Redis')
  const st = await request(`http://127.0.0.1:${proxy.adminPort}/status.json`)
  const redisStatus = (await st.body.json() as { redis: { up: boolean; decisions: { exact: number } } }).redis
  t.equal(redisStatus.up, true, '/status.json shows Redis up')
  t.equal(redisStatus.decisions.exact, await decisions(), 'and the same decision count as /metrics')
})

t.test('an error reply from a healthy Redis fails that request only: on_error decides it, Redis stays up', async (t) => {
  // someone else's value in a bucket key: the script cannot read it (a Lua error, a ReplyError), Redis answers fine
  await cli.set('leaky:{odd}:', 'not-a-number')
  const metric = async (name: string) => {
    const text = await (await request(`http://127.0.0.1:${proxy.adminPort}/metrics`)).body.text()
    return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN)
  }
  const mark = proxy.lines.length
  const bad: string[] = []
  for (let i = 0; i < 3; i++) {
    const r = await request(proxy.url('/odd/__stub/health'), { headers: { 'x-request-id': `reply-${i}` } })
    await r.body.dump()
    t.equal(r.statusCode, 200, 'on_error local (default) admits within its share')
    bad.push((await proxy.waitLog((l) => l.msg === 'access' && l.req_id === `reply-${i}`)).cluster as string)
  }
  t.same(bad, ['local', 'local', 'local'], 'each decided by on_error')
  const replies = proxy.lines.slice(mark).filter((l) => l.msg === 'redis error reply')
  const workers = replies.map((l) => l.worker)
  t.ok(replies.length >= 1 && new Set(workers).size === workers.length, `logged once per worker thread that saw it, not per request (${workers.join(', ')})`)
  t.match(String(replies[0].reason), /ERR/)
  t.notOk(proxy.lines.slice(mark).some((l) => l.msg === 'redis down'), 'Redis is not reported down')
  t.equal(await metric('leaky_redis_up'), 1)
  // another bucket on the same connection is decided by Redis meanwhile
  const ok = await request(proxy.url('/both/__stub/health'), { headers: { 'x-request-id': 'reply-other' } })
  await ok.body.dump()
  t.equal((await proxy.waitLog((l) => l.msg === 'access' && l.req_id === 'reply-other')).cluster, 'redis')
  await cli.del('leaky:{odd}:')
})

t.test('a streamed body waits (paused) while Redis decides, then reaches the upstream whole', async (t) => {
  await cli.del('leaky:{clu}:127.0.0.1')
  const size = 3 * 1024 * 1024
  const body = Buffer.alloc(size, 'x')
  const r = await request(proxy.url('/body/__stub/echo'), { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } })
  const echo = JSON.parse(await r.body.text())
  t.equal(r.statusCode, 200)
  t.equal(echo.bodyBytes, size, 'every byte arrived')
  // chunked, no length known up front
  async function* chunks() {
    for (let i = 0; i < 8; i++) yield Buffer.alloc(256 * 1024, 'y')
  }
  const r2 = await request(proxy.url('/body/__stub/echo'), { method: 'POST', body: chunks() })
  t.equal(r2.statusCode, 200)
  t.equal(JSON.parse(await r2.body.text()).bodyBytes, 8 * 256 * 1024)
})

t.test('a reload that adds redis and a cluster limit enforces it at once; removing them goes back to local', async (t) => {
  // drop redis (and the cluster limit), then bring both back
  writeFileSync(file, config(false))
  process.kill(proxy.child.pid!, 'SIGHUP')
  await proxy.waitLog((l) => l.msg === 'reloaded' && (l.applied as string[]).includes('redis'))
  await cli.flushall()
  for (let i = 0; i < 5; i++) {
    const r = await request(proxy.url('/both/__stub/health'))
    await r.body.dump()
    t.equal(r.statusCode, 200, 'no cluster limit: loc2 (100) only')
  }
  t.equal(await cli.dbsize(), 0, 'nothing written to Redis')
  writeFileSync(file, config(true))
  process.kill(proxy.child.pid!, 'SIGHUP')
  await proxy.waitLog((l) => l.msg === 'reloaded' && (l.applied as string[]).includes('redis') && proxy.lines.filter((x) => x.msg === 'reloaded').length === 2)
  const codes: number[] = []
  for (let i = 0; i < 4; i++) {
    const r = await request(proxy.url('/both/__stub/health'))
    await r.body.dump()
    codes.push(r.statusCode)
  }
  t.same(codes, [200, 200, 200, 429], 'clu enforced again right after the reload')
})

t.test('validation: on_error only on cluster limits, cluster limits only with redis', async (t) => {
  const { spawnSync } = await import('node:child_process')
  const { CLI } = await import('../helpers/proxy.js')
  const bad = writeConfig(baseConfig(`
limits:
  a: { per: global, requests: 1/s, scope: cluster }
  b: { per: global, requests: 1/s, on_error: closed }
`))
  const r = spawnSync(process.execPath, [CLI, 'validate', '-c', bad], { encoding: 'utf8' })
  t.equal(r.status, 1)
  t.match(r.stderr, /limits\.a\.scope: scope: cluster needs a redis section/)
  t.match(r.stderr, /limits\.b\.on_error: on_error applies to scope: cluster limits only/)
})

t.test('lease mode: a proxy that stops gives its unused credit back to the cluster bucket', async (t) => {
  // T = 60 s per unit: the bucket drains ~nothing while the test runs, so its level is what was kept
  // (and a 1 s timeout: a renewal slower than 50 ms on a loaded machine would be decided by on_error, off Redis)
  const leaseProxy = await startProxy(writeConfig(baseConfig(`
redis: { url: "${redis.url}", mode: lease, expected_instances: 1, timeout: 1s }
limits:
  slow: { per: global, requests: 1/min, burst: 200, scope: cluster }
upstreams:
  stub: { targets: [embedded] }
routes:
  - { path: /slow/, upstream: stub, strip_prefix: true, limits: [slow] }
`)))
  let stopped = false
  t.teardown(() => (stopped ? undefined : leaseProxy.stop()))
  const level = async () => {
    const [tat, [sec, us]] = await Promise.all([cli.get('leaky:{slow}:'), cli.time()])
    const now = Number(sec) * 1e6 + Number(us)
    return tat === null ? 0 : (Number(tat) - now) / 60e6
  }
  let admitted = 0
  // bursts of concurrent requests: the lease grows with the rate it sees, so the proxy ends up holding spare credit
  for (let round = 0; round < 6; round++) {
    const rs = await Promise.all(Array.from({ length: 10 }, () => request(leaseProxy.url('/slow/__stub/health'))))
    for (const r of rs) {
      await r.body.dump()
      if (r.statusCode === 200) admitted++
    }
  }
  t.equal(admitted, 60, 'all admitted (burst 200)')
  const held = await level()
  t.ok(held > admitted + 0.5, `the proxy holds leased credit beyond what it spent (bucket ${held.toFixed(2)} > ${admitted})`)
  stopped = true
  t.equal(await leaseProxy.stop(), 0)
  const after = await level()
  t.ok(Math.abs(after - admitted) < 0.1, `after the stop the bucket holds exactly what was spent: ${after.toFixed(3)} ≈ ${admitted}`)
})
