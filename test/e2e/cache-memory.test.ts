// The cache's memory bound: 50 000 distinct answers through a cache of 2 MB — the bytes held never exceed it, and
// every entry that had to go is counted as an eviction.
import t from 'tap'
import { Pool } from 'undici'
import { startProxy, baseConfig, scrapeMetrics, metricValue } from '../helpers/proxy.js'

const MEMORY = 2 * 1024 * 1024
const proxy = await startProxy(baseConfig(`upstreams:
  raw: { targets: [embedded] }
routes:
  - { path: /many/, upstream: raw, strip_prefix: true, cache: { methods: [GET], when: always, scope: global } }
cache: { memory: 2mb }
`))
t.teardown(() => proxy.stop())

async function metric(name: string): Promise<number> {
  return metricValue(await scrapeMetrics(proxy), name)
}

t.test('50 000 distinct entries: bytes stay within cache.memory, evictions counted', async (t) => {
  const N = 50_000
  const pool = new Pool(proxy.url('/'), { connections: 32, pipelining: 1 })
  t.teardown(() => pool.close())
  let next = 0
  let ok = 0
  let peak = 0
  const worker = async () => {
    while (next < N) {
      const i = next++
      const r = await pool.request({ path: `/many/__stub/health?entry=${i}`, method: 'GET' })
      await r.body.dump()
      if (r.statusCode === 200 && r.headers['x-cache'] === 'MISS') ok++
      if (i % 5000 === 0) peak = Math.max(peak, await metric('leaky_cache_bytes'))
    }
  }
  await Promise.all(Array.from({ length: 32 }, worker))
  t.equal(ok, N, 'every request answered, each a miss')
  const bytes = await metric('leaky_cache_bytes')
  const entries = await metric('leaky_cache_entries')
  const evictions = await metric('leaky_cache_evictions_total')
  t.ok(bytes <= MEMORY && peak <= MEMORY, `bytes held ${bytes} (peak sampled ${peak}) ≤ ${MEMORY}`)
  t.ok(bytes > MEMORY * 0.9, 'the cache is used up to its bound')
  t.equal(await metric('leaky_cache_misses_total'), N)
  t.equal(entries + evictions, N, 'every entry stored is held or counted as evicted')
  t.ok(evictions > N / 2, `evictions counted (${evictions})`)
  // the newest entries are the ones kept
  const r = await pool.request({ path: `/many/__stub/health?entry=${N - 1}`, method: 'GET' })
  await r.body.dump()
  t.equal(r.headers['x-cache'], 'HIT', 'the most recent entry is still held')
  const old = await pool.request({ path: '/many/__stub/health?entry=0', method: 'GET' })
  await old.body.dump()
  t.equal(old.headers['x-cache'], 'MISS', 'the oldest was evicted')
})
