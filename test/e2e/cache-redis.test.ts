// The cache's Redis tier (`cache.redis: true`): two real proxies (2 worker threads each) on one real redis-server,
// one counting upstream. An answer fetched through one proxy is served by the other without an upstream call (JSON
// and SSE); tenants stay apart; a purge reaches the other proxies' answers; a corrupt value is a miss (logged once);
// Redis down is a miss, never a failed or hung request, and the tier comes back with it.
import t from 'tap'
import { request } from 'undici'
import { Redis } from 'ioredis'
import { startProxy, baseConfig, writeConfig, scrapeMetrics, metricValue, type Proxy } from '../helpers/proxy.js'
import { startCountingUpstream, EVENTS } from '../helpers/counting-upstream.js'
import { startRedis } from '../helpers/redis.js'

const redis = await startRedis()
const up = await startCountingUpstream()
const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 })
const config = () => baseConfig(`redis: { url: "${redis.url}", timeout: 200ms }
keys:
  - { id: alice, key: sk-alice }
  - { id: bob, key: sk-bob }
upstreams:
  llm: { provider: openai, targets: ["${up.origin}"] }
routes:
  - { path: /v1/, upstream: llm, auth: key, cache: { ttl: 1h } }
cache: { redis: true }
`)
const a: Proxy = await startProxy(writeConfig(config()))
const b: Proxy = await startProxy(writeConfig(config()))
t.teardown(async () => {
  client.disconnect()
  await a.stop()
  await b.stop()
  await up.close()
  await redis.stop()
})

const chat = (content: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], temperature: 0, max_tokens: 20, ...extra })

async function post(p: Proxy, body: string, key = 'sk-alice') {
  const res = await request(p.url('/v1/chat/completions'), {
    method: 'POST', body, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
  })
  const text = await res.body.text()
  const xCache = String(res.headers['x-cache'])
  // a MISS is written to Redis when the upstream's end reaches the owner, just after the client has its answer
  if (xCache === 'MISS') await until(p, 'leaky_cache_flights', (v) => v === 0)
  return { status: res.statusCode, text, xCache }
}

async function metric(p: Proxy, name: string): Promise<number> {
  const v = metricValue(await scrapeMetrics(p), name)
  return Number.isNaN(v) ? 0 : v
}

async function until(p: Proxy, name: string, ok: (v: number) => boolean): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (ok(await metric(p, name))) return
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`${name} never got there`)
}

/** Keys the proxies wrote, once the writes (fire and forget) have landed. */
async function stored(n: number): Promise<string[]> {
  if (client.status === 'wait') await client.connect()
  for (let i = 0; i < 500; i++) {
    // the test's own client reconnects by itself after Redis came back
    const keys = await client.keys('leaky:cache:*').catch(() => [] as string[])
    if (keys.length >= n) return keys
    await new Promise((r) => setTimeout(r, 10))
  }
  const why = [a, b].map((p) => p.lines.filter((l) => String(l.msg).startsWith('cache: ')).map((l) => `${l.time} ${l.msg}`))
  throw new Error(`fewer than ${n} cache keys in Redis (test client ${client.status}); the proxies said: ${JSON.stringify(why)}`)
}

t.test('an answer fetched through one proxy is served by the other from Redis, JSON and SSE', async (t) => {
  for (const stream of [false, true]) {
    const body = chat(`shared ${stream}`, stream ? { stream: true } : {})
    const before = up.calls.length
    const hits = await metric(b, 'leaky_cache_redis_hits_total')
    const first = await post(a, body)
    t.equal(first.xCache, 'MISS')
    t.equal(up.calls.length - before, 1, 'one upstream call')
    await stored(stream ? 2 : 1)
    const other = await post(b, body)
    t.equal(other.status, 200)
    t.equal(other.xCache, 'HIT', 'the other proxy: a hit from Redis')
    t.equal(other.text, first.text, 'the same answer, byte for byte')
    t.equal(up.calls.length - before, 1, 'no second upstream call')
    t.equal(await metric(b, 'leaky_cache_redis_hits_total') - hits, 1, 'counted as a Redis hit')
    const again = await post(b, body)
    t.equal(again.xCache, 'HIT')
    t.equal(await metric(b, 'leaky_cache_redis_hits_total') - hits, 1, 'then kept locally: no second Redis lookup')
    if (stream) t.match(first.text, new RegExp(EVENTS.map((e) => JSON.stringify(e).slice(1, -1)).join('.*'), 's'), 'the streamed events')
  }
})

t.test('tenants stay apart through Redis (scope: key)', async (t) => {
  const body = chat('tenant')
  const before = up.calls.length
  t.equal((await post(a, body, 'sk-alice')).xCache, 'MISS')
  await stored(1)
  t.equal((await post(b, body, 'sk-bob')).xCache, 'MISS', 'another key: not served alice\'s answer')
  t.equal(up.calls.length - before, 2)
})

t.test('a purge on one proxy removes the answers every proxy stored in Redis', async (t) => {
  const body = chat('purge everywhere')
  t.equal((await post(a, body)).xCache, 'MISS')
  await stored(1)
  const res = await request(`http://127.0.0.1:${b.adminPort}/admin/cache/purge`, { method: 'POST', body: '{"scope":"key:alice"}' })
  const json = await res.body.json() as { redis_purged: number }
  t.equal(res.statusCode, 200)
  t.ok(json.redis_purged >= 1, `removed from Redis (${json.redis_purged})`)
  const before = up.calls.length
  t.equal((await post(b, body)).xCache, 'MISS', 'the other proxy does not get it back from Redis')
  t.equal(up.calls.length - before, 1)
})

t.test('a value that does not decode is a miss, logged once', async (t) => {
  const body = chat('corrupt me')
  t.equal((await post(a, body)).xCache, 'MISS')
  const keys = await stored(1)
  for (const k of keys) await client.set(k, 'not an entry', 'KEEPTTL')
  const errors = await metric(b, 'leaky_cache_redis_errors_total')
  const before = up.calls.length
  const r = await post(b, body)
  t.equal(r.status, 200)
  t.equal(r.xCache, 'MISS', 'asked upstream instead')
  t.equal(up.calls.length - before, 1)
  t.equal(await metric(b, 'leaky_cache_redis_errors_total') - errors, 1, 'counted')
  await b.waitLog((l) => typeof l.msg === 'string' && l.msg.startsWith('cache: a Redis entry did not decode'))
})

t.test('Redis down: misses, never a failed or slow request; the tier works again once it is back', async (t) => {
  await redis.stop()
  const started = performance.now()
  for (let i = 0; i < 10; i++) {
    const r = await post(b, chat(`down ${i}`))
    t.equal(r.status, 200)
    t.equal(r.xCache, 'MISS')
  }
  t.ok(performance.now() - started < 10_000, 'ten requests answered while Redis was down')
  await b.waitLog((l) => l.msg === 'cache: Redis failing; lookups are misses until it answers again')
  await redis.start()
  await b.waitLog((l) => l.msg === 'cache: Redis answering again', 30_000)
  await a.waitLog((l) => l.msg === 'cache: Redis answering again', 30_000)
  const body = chat('back again')
  t.equal((await post(a, body)).xCache, 'MISS')
  await stored(1)
  t.equal((await post(b, body)).xCache, 'HIT', 'shared again')
})
