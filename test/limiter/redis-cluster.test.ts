// Three independent "proxies" (worker threads, each with its own RedisLimiter and connection: fixture
// test/fixtures/limiter/redis-proxy.mjs, which loads dist/ — build first) sharing one real redis-server.
import t from 'tap'
import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import type { LimitDef } from '../../src/limiter/limit.js'
import { compileLimit } from '../../src/limiter/limit.js'
import { RedisLimiter, Via, type RedisSection } from '../../src/limiter/redis.js'
import { startRedis } from '../helpers/redis.js'

const FIXTURE = new URL('../fixtures/limiter/redis-proxy.mjs', import.meta.url)
const redis = await startRedis()
t.teardown(() => redis.stop())

interface PerLimit { redisOk: number[]; first: number; last: number; byVia: number[]; okByVia: number[]; busy: number }
interface Result {
  per: PerLimit[]; slowest: number; lagMs: number; attempts: number; ok: number; used: number; failed?: boolean
  transitions: Array<{ up: boolean; reason: string; at: number }>
  counters: Record<string, number>
  leased: { closed: boolean; leased: number; returned: number; renewals: number; failures: number; taken: number; short: number } | null
}

let seq = 0
function section(over: Partial<RedisSection> = {}): RedisSection {
  return {
    url: redis.url, key_prefix: `c${++seq}:`, timeout: 50, mode: 'exact', on_error: 'local', expected_instances: 3, ...over,
  } as RedisSection
}

/** Start `n` proxies, release them together; `during` runs while they work. */
async function proxies(n: number, data: Record<string, unknown>, during?: () => Promise<void>): Promise<Result[]> {
  const ws = Array.from({ length: n }, (_, i) => new Worker(FIXTURE, { workerData: { ...data, seed: i + 1 } }))
  try {
    await Promise.all(ws.map((w) => once(w, 'message')))
    const results = ws.map((w) => once(w, 'message').then(([m]) => m as Result))
    for (const w of ws) w.postMessage('go')
    if (during !== undefined) await during()
    return await Promise.all(results)
  } finally {
    await Promise.all(ws.map((w) => w.terminate()))
  }
}

const r300: LimitDef = { name: 'r300', per: 'global', unit: 'requests', amount: 300, period_ms: 1000, burst: 30 }
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)

t.test('exact mode: 3 proxies on one 300/s burst-30 cluster limit for 3 s admit 300·T + 30 within 2%', async (t) => {
  const rs = await proxies(3, { redis: section(), limits: [r300], mode: 'hammer', seconds: 3, concurrency: 4 })
  const ok = sum(rs.map((r) => r.per[0].okByVia[Via.REDIS]))
  const first = Math.min(...rs.map((r) => r.per[0].first))
  const last = Math.max(...rs.map((r) => r.per[0].last))
  const elapsed = (last - first) / 1000 // Redis TIME of the first and last decision
  const want = 300 * elapsed + 30
  t.ok(elapsed > 2.7, `ran ${elapsed.toFixed(3)} s`)
  t.ok(Math.abs(ok - want) <= want * 0.02, `admitted ${ok}, want ${want.toFixed(1)} ± 2% (${rs.map((r) => r.attempts).join('+')} attempts)`)
  t.ok(rs.every((r) => r.per[0].okByVia[Via.REDIS] > 0), 'every proxy got some')
  t.ok(rs.every((r) => r.per[0].byVia[Via.REDIS] === r.attempts), 'every decision by Redis')
})

t.test('reconcile: a cluster token budget equals the summed real usage of 3 proxies exactly', async (t) => {
  const cfg = section()
  // ~0.4 tokens/s drain: the level stays the sum of usage within a fraction of a token during the test
  const tpm: LimitDef = { name: 'tokens', per: 'org', unit: 'tokens', amount: 1_000_000, period_ms: 30 * 86_400_000, burst: 1_000_000 }
  const rs = await proxies(3, { redis: cfg, limits: [tpm], mode: 'tokens', requests: 200, estimate: 500 })
  t.ok(rs.every((r) => r.ok === 200 && r.failed !== true), 'all admitted and reconciled')
  const used = sum(rs.map((r) => r.used))
  const rl = new RedisLimiter(cfg)
  t.teardown(() => rl.close())
  await rl.ready()
  const level = await rl.level(compileLimit(tpm), 'org')
  t.equal(Math.round(level), used, `bucket ${level.toFixed(3)} = summed usage ${used}`)
})

t.test('Redis killed mid-load and restarted: each on_error policy, bounded waits, transitions, exact after recovery', async (t) => {
  const defs = (['open', 'closed', 'local'] as const).map((p) => ({ ...r300, name: `r300-${p}` }))
  const onError = defs.map((d, i) => [d.name, (['open', 'closed', 'local'] as const)[i]])
  const admin = { restartedUs: 0 }
  const rs = await proxies(3, { redis: section(), onError, limits: defs, mode: 'hammer', seconds: 3, concurrency: 1, paceMs: 1 }, async () => {
    await new Promise((r) => setTimeout(r, 800)) // load runs against a live Redis first
    await redis.stop()
    await new Promise((r) => setTimeout(r, 700)) // …then for 0.7 s without one
    await redis.start()
    const c = new Redis(redis.url)
    const [s, us] = await c.time()
    admin.restartedUs = Number(s) * 1e6 + Number(us)
    await c.quit()
  })
  for (const r of rs) {
    // a timer can only be as punctual as the event loop: the bound is timeout + the loop's worst delay
    t.ok(r.slowest < 50 + r.lagMs + 15, `slowest decide ${r.slowest.toFixed(1)} ms (timeout 50 ms, loop delay ${r.lagMs.toFixed(1)} ms)`)
    const ups = r.transitions.map((x) => x.up)
    const why = r.transitions.map((x) => x.reason).join(' → ')
    // on a loaded machine a command may also time out while Redis lives: such flaps are transitions too
    t.ok(ups.every((u, i) => u === (i % 2 === 0)) && ups.at(-1) === true, `alternating, starts and ends up: ${why}`)
    t.equal(r.transitions.filter((x) => !x.up && x.reason !== 'Command timed out').length, 1, 'one down for the kill')
    t.ok(r.counters.errors > 0 && r.counters.fallbackOpen > 0 && r.counters.fallbackClosed > 0 && r.counters.fallbackLocal > 0,
      `counters ${JSON.stringify(r.counters)}`)
  }
  const [open, closed, local] = [0, 1, 2].map((li) => rs.map((r) => r.per[li]))
  t.equal(sum(open.map((p) => p.byVia[Via.OPEN])), sum(open.map((p) => p.okByVia[Via.OPEN])), 'open: every fallback decision admitted')
  t.ok(sum(closed.map((p) => p.byVia[Via.CLOSED])) > 0 && sum(closed.map((p) => p.okByVia[Via.CLOSED])) === 0, 'closed: fallback decisions denied')
  t.equal(sum(closed.map((p) => p.busy)), sum(closed.map((p) => p.byVia[Via.CLOSED])), 'closed: as BUSY (503)')
  const localOk = sum(local.map((p) => p.okByVia[Via.LOCAL]))
  const localAll = sum(local.map((p) => p.byVia[Via.LOCAL]))
  // each proxy alone enforces 100/s burst 10 while it sees Redis down (0.7 s plus its reconnect delay)
  const downS = rs.map((r) => {
    const i = r.transitions.findIndex((x) => !x.up && x.reason !== 'Command timed out')
    return (r.transitions[i + 1].at - r.transitions[i].at) / 1000
  })
  const bound = sum(downS.map((s) => 100 * s + 10))
  t.ok(localOk > 0 && localOk < localAll && localOk <= bound * 1.05 + 3,
    `local: ${localOk} of ${localAll} admitted, bound ${bound.toFixed(0)} (down ${downS.map((s) => s.toFixed(2)).join(', ')} s)`)
  // after recovery (Redis restarted empty) every limit is exact again: 300·T + 30 over Redis time
  for (const [name, per] of [['open', open], ['closed', closed], ['local', local]] as const) {
    const after = per.flatMap((p) => p.redisOk.filter((at) => at * 1000 >= admin.restartedUs - 1000))
    const first = Math.min(...after)
    const last = Math.max(...per.map((p) => p.last))
    const elapsed = (last - first) / 1000
    const want = 300 * elapsed + 30
    t.ok(elapsed > 0.8, `${name}: ${elapsed.toFixed(3)} s of Redis decisions after recovery`)
    t.ok(Math.abs(after.length - want) <= want * 0.02, `${name}: admitted ${after.length} after recovery, want ${want.toFixed(1)} ± 2%`)
  }
})

t.test('lease mode: 3 proxies on one 300/s burst-30 cluster limit stay within 300·T + 30 + N·L (L = 30/3)', async (t) => {
  const cfg = section({ mode: 'lease', expected_instances: 3 })
  const rs = await proxies(3, { redis: cfg, limits: [r300], mode: 'lease', seconds: 3, concurrency: 4 })
  const ok = sum(rs.map((r) => r.per[0].okByVia[Via.LEASE]))
  const first = Math.min(...rs.map((r) => r.per[0].first))
  const last = Math.max(...rs.map((r) => r.per[0].last))
  const elapsed = (last - first) / 1000
  const exact = 300 * elapsed + 30
  const bound = exact + 3 * 10
  const leased = rs.map((r) => r.leased!)
  t.ok(elapsed > 2.7, `ran ${elapsed.toFixed(3)} s`)
  t.ok(ok <= bound, `admitted ${ok} <= bound ${bound.toFixed(1)} (exact would be ${exact.toFixed(1)}; overshoot ${(ok - exact).toFixed(1)})`)
  t.ok(ok >= 300 * elapsed * 0.95, `admitted ${ok} >= 95% of the rate (${(300 * elapsed).toFixed(0)})`)
  t.ok(rs.every((r) => r.per[0].okByVia[Via.LEASE] > 0), 'every proxy got some')
  t.ok(leased.every((x) => x.closed), 'unused credit given back on close')
  // every unit Redis granted was either spent or given back
  t.same(leased.map((x) => x.leased), rs.map((r, i) => r.per[0].okByVia[Via.LEASE] + leased[i].returned),
    `leased = spent + returned: ${JSON.stringify(leased)}`)
})
