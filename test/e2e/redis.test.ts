// Issue #7 end to end: cluster-wide limits shared through one real redis-server by three real proxy processes
// (`workers: 1` each, embedded stub upstream), over real sockets. Exact mode accuracy, lease mode overshoot bound,
// a token budget reconciled exactly to the usage the clients saw, Redis killed mid-load then restarted, and Redis
// stalled (SIGSTOP), under each on_error policy. Spawns dist/cli/main.js: build first (npm run build).
import t, { type Test } from 'tap'
import { request } from 'undici'
import OpenAI from 'openai'
import { Redis } from 'ioredis'
import { startProxy, baseConfig, scrapeMetrics, metricValue, type Proxy, type LogLine } from '../helpers/proxy.js'
import { startRedis } from '../helpers/redis.js'

const TIMEOUT_MS = 50
// The on_error limits: low enough that offered load stays far above them per proxy even when this shared 2-core
// machine slows the clients down (the local fallback is P_RATE/3 per proxy), with a burst of 0.3 s of rate so that a
// scheduling stall under 300 ms loses no capacity (a lost slice would read as under-admission).
const P_RATE = 90
const P_BURST = 27
const redis = await startRedis()
t.teardown(() => redis.stop())

function config(mode: 'exact' | 'lease'): string {
  const yaml = baseConfig(`redis:
  url: ${redis.url}
  key_prefix: "leaky:"
  timeout: ${TIMEOUT_MS}ms
  mode: ${mode}
  on_error: local
  expected_instances: 3
limits:
  c: { per: global, requests: 300/s, burst: 30, scope: cluster }
  budget: { per: global, tokens: 1000/s, burst: 1000000, scope: cluster }
  c-open: { per: global, requests: ${P_RATE}/s, burst: ${P_BURST}, scope: cluster, on_error: open }
  c-closed: { per: global, requests: ${P_RATE}/s, burst: ${P_BURST}, scope: cluster, on_error: closed }
  c-local: { per: global, requests: ${P_RATE}/s, burst: ${P_BURST}, scope: cluster }
upstreams:
  raw: { targets: [embedded] }
  llm: { provider: openai, targets: [embedded] }
routes:
  - { path: /c/, upstream: raw, strip_prefix: true, limits: [c] }
  - { path: /llm/, upstream: llm, strip_prefix: true, limits: [budget] }
  - { path: /open/, upstream: raw, strip_prefix: true, limits: [c-open] }
  - { path: /closed/, upstream: raw, strip_prefix: true, limits: [c-closed] }
  - { path: /local/, upstream: raw, strip_prefix: true, limits: [c-local] }
`)
  // one worker thread per proxy: N in the lease bound is proxies × workers
  const one = yaml.replace(/^workers: \d+$/m, 'workers: 1')
  if (one === yaml) throw new Error('baseConfig no longer has a "workers:" line to override')
  return one
}

async function startSet(mode: 'exact' | 'lease'): Promise<Proxy[]> {
  const cfg = config(mode)
  const ps = await Promise.all([0, 1, 2].map(() => startProxy(cfg)))
  t.teardown(() => Promise.all(ps.map((p) => p.stop())))
  return ps
}

/** One request the load generator sent, as the client saw it. */
interface Shot {
  proxy: number
  path: string
  id: string
  status: number
  ms: number
  retryAfter: string | undefined
  code: string | undefined
}

/**
 * Offered load ~1600/s over 16 loops (each sends, then waits out the rest of its 10 ms), spread over the proxies
 * (loop i → proxy i % n) and the paths (round robin per loop). Paced, not an unpaced flood: an unpaced flood
 * starves this 2-core machine and a client stalled past a bucket's tolerance loses admissions the limiter offered.
 * Runs until `stop()` or until `ms` have passed.
 */
class Load {
  readonly shots: Shot[] = []
  readonly done: Promise<void>
  private running = true

  constructor(private readonly proxies: Proxy[], private readonly paths: string[], private readonly tag: string, ms = Infinity) {
    const deadline = Date.now() + ms
    this.done = Promise.all(Array.from({ length: 16 }, (_, i) => this.loop(i, deadline))).then(() => {})
  }

  stop(): Promise<void> {
    this.running = false
    return this.done
  }

  private async loop(i: number, deadline: number): Promise<void> {
    const pi = i % this.proxies.length
    const p = this.proxies[pi]
    for (let k = 0; this.running && Date.now() < deadline; k++) {
      const path = this.paths[(i + k) % this.paths.length]
      const id = `${this.tag}-${i}-${k}`
      const t0 = performance.now()
      const res = await request(p.url(path + '__stub/health'), { headers: { 'x-request-id': id } })
      const text = await res.body.text()
      const ms = performance.now() - t0
      let code: string | undefined
      if (res.statusCode !== 200) code = (JSON.parse(text) as { error?: { code?: string } }).error?.code
      const ra = res.headers['retry-after']
      this.shots.push({ proxy: pi, path, id, status: res.statusCode, ms, retryAfter: ra === undefined ? undefined : String(ra), code })
      const wait = 10 - (performance.now() - t0)
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    }
  }

  /** Wait until every proxy has written the access line of every request sent to it; returns them by request id. */
  async lines(): Promise<Map<string, LogLine>> {
    const ids = new Set(this.shots.map((s) => s.id))
    const byId = new Map<string, LogLine>()
    await Promise.all(this.proxies.map(async (p, pi) => {
      const want = this.shots.filter((s) => s.proxy === pi).length
      let seen = 0
      for (;;) {
        for (const l of p.lines) if (l.msg === 'access' && ids.has(l.req_id as string) && !byId.has(l.req_id as string)) byId.set(l.req_id as string, l)
        seen = this.shots.filter((s) => s.proxy === pi && byId.has(s.id)).length
        if (seen >= want) return
        let armed = false
        const next = p.waitLog((l) => armed && l.msg === 'access', 5000)
        armed = true
        await next
      }
    }))
    return byId
  }
}

/** When the proxy saw the request arrive (its own clock: log time − duration), ms since the epoch. */
function arrival(l: LogLine): number {
  return Date.parse(String(l.time)) - (l.duration_ms as number)
}

/** Span in seconds between the first and last arrival of these access lines. */
function span(ls: LogLine[]): number {
  const at = ls.map(arrival)
  return (Math.max(...at) - Math.min(...at)) / 1000
}

function running(p: Proxy): boolean {
  return p.child.exitCode === null && p.child.signalCode === null
}

/** Poll `check` every 50 ms until it holds (true) or `ms` pass (false): for state only visible by asking. */
async function until(check: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check()) return true
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function withRedis<T>(f: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  try {
    return await f(c)
  } finally {
    c.disconnect()
  }
}

/** Admitted requests of `path` among `lines`, and T from the proxies' clocks; asserts rate·T + burst within 2%. */
function assertExact(t: Test, lines: LogLine[], path: string, rate: number, burst: number, what: string): void {
  const ok = lines.filter((l) => String(l.path).startsWith(path) && l.status === 200)
  const T = span(ok)
  const want = rate * T + burst
  t.ok(T > 1, `${what}: measured over ${T.toFixed(3)} s`)
  t.ok(Math.abs(ok.length - want) <= want * 0.02, `${what}: admitted ${ok.length}, want ${want.toFixed(1)} ± 2% (T ${T.toFixed(3)} s)`)
}

/**
 * Run the load for `ms` on paths other than the one about to be measured: the first second of three cold proxies
 * (JIT, connections, a busy machine) has stalls longer than a bucket's 100 ms tolerance, and capacity unused during
 * a stall is lost, which a measurement would read as under-admission.
 */
async function warmUp(proxies: Proxy[], ms: number): Promise<void> {
  const w = new Load(proxies, ['/open/', '/closed/', '/local/'], 'warm', ms)
  await w.done
  await w.lines()
}

/** 'redis down' lines proxy p wrote from index `from` on. */
function downs(p: Proxy, from: number): LogLine[] {
  return p.lines.slice(from).filter((l) => l.msg === 'redis down')
}

/**
 * Flood `paths` for `ms` on empty buckets, then `check` what was admitted. A proxy whose event loop stalls past the
 * 50 ms timeout on this busy machine sees Redis time out and decides by on_error for a moment, as the contract says
 * (logged as "redis down"): such a window is a fallback window, not a measurement of the mode, so it is measured
 * again (3 attempts at most). Nothing else is retried.
 */
async function measure(t: Test, proxies: Proxy[], paths: string[], keys: string[], tag: string, ms: number,
  check: (lines: LogLine[]) => void): Promise<Load> {
  for (let attempt = 1; ; attempt++) {
    // a bucket's key expires when the bucket is empty
    t.ok(await until(() => withRedis(async (c) => (await c.exists(...keys)) === 0), 3000), `${tag}: buckets empty before the flood`)
    const marks = proxies.map((p) => p.lines.length)
    const load = new Load(proxies, paths, `${tag}${attempt}`, ms)
    await load.done
    const lines = [...(await load.lines()).values()]
    const flaps = proxies.flatMap((p, pi) => downs(p, marks[pi]).map((l) => `proxy ${pi}: ${String(l.reason)}`))
    if (flaps.length > 0 && attempt < 3) {
      t.comment(`${tag} attempt ${attempt}: Redis seen down during the flood (${flaps.join(', ')}): measuring again`)
      continue
    }
    t.same(flaps, [], `${tag}: no "redis down" during the flood`)
    check(lines)
    return load
  }
}

/** measure(), asserting admitted = rate·T + burst (±2%) on each path, every decision by Redis. */
function measureExact(t: Test, proxies: Proxy[], paths: string[], keys: string[], rate: number, burst: number, tag: string, ms: number): Promise<Load> {
  return measure(t, proxies, paths, keys, tag, ms, (lines) => {
    t.ok(lines.every((l) => l.cluster === 'redis'), `${tag}: every decision made by Redis`)
    for (const path of paths) assertExact(t, lines, path, rate, burst, `${tag} ${path}`)
  })
}

let exact: Proxy[] = []

t.test('exact mode: three proxies on one 300/s burst-30 cluster limit admit 300·T + 30 within 2%', async (t) => {
  exact = await startSet('exact')
  await warmUp(exact, 1000)
  const load = await measureExact(t, exact, ['/c/'], ['leaky:{c}:'], 300, 30, 'exact', 3000)
  for (let pi = 0; pi < 3; pi++) t.ok(load.shots.some((s) => s.proxy === pi && s.status === 200), `proxy ${pi} got admissions`)
  t.ok(load.shots.every((s) => s.status === 200 || (s.status === 429 && s.code === 'LEAKY_RATE_LIMITED')), 'only 200 and 429 LEAKY_RATE_LIMITED')
})

t.test('token budget: the cluster bucket moves by exactly the usage the clients saw (pre-charge + reconcile)', async (t) => {
  const key = 'leaky:{budget}:'
  const T_US = 1000 // 1000 tokens/s
  // a TAT 100 s ahead: the bucket holds 100k tokens and never drains to empty during the test, so its TAT moves only
  // by charges and refunds
  const seed = await withRedis(async (c) => {
    const [s, us] = await c.time()
    const tat = Number(s) * 1e6 + Number(us) + 100e6
    await c.set(key, String(tat))
    return tat
  })
  let used = 0
  const usage = new Map<string, number>()
  await Promise.all(exact.map(async (p, pi) => {
    const ai = new OpenAI({ apiKey: 'x', baseURL: p.url('/llm/v1'), maxRetries: 0 })
    for (let i = 0; i < 6; i++) {
      const id = `tok-${pi}-${i}`
      // i % 3 == 2: max_tokens far above the 9 tokens the stub is told to produce, so reconcile refunds ~4000
      const max = i % 3 === 2 ? 4000 : 20 + i
      const headers = { 'x-request-id': id, ...(i % 3 !== 1 ? { 'x-stub-tokens': String(i % 3 === 2 ? 9 : 5 + pi) } : {}) }
      const messages = [{ role: 'user' as const, content: `story ${pi} ${i} about the sea` }]
      let total = -1
      if (i % 2 === 0) {
        const r = await ai.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: max }, { headers })
        total = r.usage!.total_tokens
      } else {
        const s = await ai.chat.completions.create(
          { model: 'gpt-4o-mini', messages, max_tokens: max, stream: true, stream_options: { include_usage: true } }, { headers })
        for await (const c of s) if (c.usage) total = c.usage.total_tokens
      }
      t.ok(total > 0, `${id} (${i % 2 === 0 ? 'JSON' : 'SSE'}): the client saw usage ${total}`)
      usage.set(id, total)
      used += total
    }
  }))
  // every access line written (the response is complete on the proxy's side)…
  let refunds = 0
  for (const [id, total] of usage) {
    const p = exact[Number(id.split('-')[1])]
    const l = await p.waitLog((l) => l.msg === 'access' && l.req_id === id)
    t.equal(l.cluster, 'redis', `${id} decided by Redis`)
    t.equal((l.tokens_prompt as number) + (l.tokens_completion as number), total, `${id}: the proxy accounted what the client saw`)
    if ((l.tokens_estimate as number) - total > 3000) refunds++
  }
  t.equal(refunds, 6, 'six requests pre-charged ~4000 tokens more than they used')
  // …and every reconcile (a second Redis call after the response) landed: the TAT reaches seed + usage·T
  const want = seed + used * T_US
  let tat = NaN
  await until(async () => (tat = Number(await withRedis((c) => c.get(key)))) === want, 3000)
  t.equal((tat - seed) / T_US, used, `bucket moved by ${(tat - seed) / T_US} tokens; clients saw ${used}`)
})

const POLICY_PATHS = ['/open/', '/closed/', '/local/']

/** Checks shared by the kill and the stall: what each policy answered while its proxy saw Redis down. */
function assertPolicies(t: Test, during: LogLine[][], load: Load, rateChecks: boolean): void {
  const all = during.flat()
  const on = (path: string) => all.filter((l) => String(l.path).startsWith(path) && l.cluster !== 'redis')

  const open = on('/open/')
  t.ok(open.length > 0 && open.every((l) => l.cluster === 'open' && l.status === 200), `open: all ${open.length} fallback decisions admitted (cluster "open")`)
  if (rateChecks) {
    const T = span(open)
    const limit = P_RATE * T + P_BURST
    t.ok(open.length > limit * 1.2, `open: ${open.length} admitted in ${T.toFixed(3)} s, beyond the limit's ${limit.toFixed(0)}`)
  }

  const closed = on('/closed/')
  t.ok(closed.length > 0 && closed.every((l) => l.cluster === 'closed' && l.status === 503 && l.error === 'LEAKY_REDIS_UNAVAILABLE'),
    `closed: all ${closed.length} fallback decisions answered 503 LEAKY_REDIS_UNAVAILABLE (cluster "closed")`)
  const closedIds = new Set(closed.map((l) => l.req_id))
  const closedShots = load.shots.filter((s) => closedIds.has(s.id))
  t.ok(closedShots.length === closed.length && closedShots.every((s) => s.status === 503 && s.code === 'LEAKY_REDIS_UNAVAILABLE' && s.retryAfter === '1'),
    'closed: the client got 503, code LEAKY_REDIS_UNAVAILABLE, Retry-After: 1')

  for (let pi = 0; pi < during.length; pi++) {
    const local = during[pi].filter((l) => String(l.path).startsWith('/local/') && l.cluster !== 'redis')
    t.ok(local.length > 0 && local.every((l) => l.cluster === 'local' && (l.status === 200 || (l.status === 429 && l.error === 'LEAKY_RATE_LIMITED'))),
      `proxy ${pi} local: ${local.length} decided on the proxy's own bucket, 200 or 429 LEAKY_RATE_LIMITED`)
    if (!rateChecks) continue
    const ok = local.filter((l) => l.status === 200)
    const T = span(ok)
    const want = (P_RATE * T + P_BURST) / 3 // rate and burst divided by expected_instances
    t.ok(local.length > ok.length * 1.3, `proxy ${pi} local: offered ${local.length} well above admitted ${ok.length}`)
    // at most what the divided limit allows; at least its rate over T (its burst may be partly spent already by an
    // earlier fallback moment: a timeout flap under load just before the kill decides on the same local bucket)
    const fair = ok.length <= want * 1.03 + 1 && ok.length >= (P_RATE / 3) * T * 0.97
    t.ok(fair, `proxy ${pi} local: admitted ${ok.length}, want (${P_RATE}/3)·T + ${P_BURST}/3 = ${want.toFixed(1)} (+3%, −burst/3 −3%; T ${T.toFixed(3)} s)`)
    if (Math.abs(ok.length - want) > want * 0.03 + 1) {
      const t0 = arrival(local[0])
      t.comment(`proxy ${pi} local decisions (ms after the first:status): ${local.map((l) => `${arrival(l) - t0}:${l.status}`).join(' ')}`)
    }
  }
}

/** Access lines of `load` each proxy wrote between its own `down` and `up` lines (log order = decision order). */
function between(proxies: Proxy[], down: LogLine[], up: LogLine[], byId: Map<string, LogLine>): LogLine[][] {
  return proxies.map((p, pi) => p.lines.slice(p.lines.indexOf(down[pi]), p.lines.indexOf(up[pi]))
    .filter((l) => l.msg === 'access' && byId.get(l.req_id as string) === l))
}

t.test('Redis killed mid-load and restarted: open, closed and local policies, bounded latency, exact after', async (t) => {
  const marks = exact.map((p) => p.lines.length)
  const load = new Load(exact, POLICY_PATHS, 'k')
  // Redis decides first: wait for a Redis decision on every proxy
  await Promise.all(exact.map((p, pi) => p.waitLog((l) => l.msg === 'access' && l.cluster === 'redis' && String(l.req_id).startsWith('k-') && p.lines.indexOf(l) >= marks[pi])))
  const killMarks = exact.map((p) => p.lines.length)
  const killedAt = Date.now()
  await redis.stop()
  const down = await Promise.all(exact.map((p, pi) => p.waitLog((l) => l.msg === 'redis down' && p.lines.indexOf(l) >= killMarks[pi], 5000)))
  const sawZero = await until(async () => (await Promise.all(exact.map(scrapeMetrics))).every((m) => metricValue(m, 'leaky_redis_up') === 0), 3000)
  t.ok(sawZero, '/metrics: leaky_redis_up 0 on every proxy while Redis is down')
  // keep it down long enough to measure the local fallback's rate (a measuring window, not a wait for an event)
  const rest = 1500 - (Date.now() - killedAt)
  if (rest > 0) await new Promise((r) => setTimeout(r, rest))
  const restartMarks = exact.map((p) => p.lines.length)
  await redis.start()
  const up = await Promise.all(exact.map((p, pi) => p.waitLog((l) => l.msg === 'redis up' && p.lines.indexOf(l) >= restartMarks[pi], 10_000)))
  const sawOne = await until(async () => (await Promise.all(exact.map(scrapeMetrics))).every((m) => metricValue(m, 'leaky_redis_up') === 1), 3000)
  t.ok(sawOne, '/metrics: leaky_redis_up back to 1 on every proxy')
  await load.stop()
  const byId = await load.lines()

  for (let pi = 0; pi < 3; pi++) {
    const p = exact[pi]
    t.ok(running(p), `proxy ${pi} still running`)
    t.equal(down[pi].level, 'warn', `proxy ${pi}: "redis down" at warn (${String(down[pi].reason)})`)
    t.equal(up[pi].level, 'info', `proxy ${pi}: "redis up" at info (${String(up[pi].reason)})`)
    t.ok(typeof down[pi].reason === 'string' && typeof up[pi].reason === 'string', 'transitions give a reason')
    t.ok(p.lines.indexOf(down[pi]) < p.lines.indexOf(up[pi]), `proxy ${pi}: "redis down" then "redis up"`)
    const m = await scrapeMetrics(p)
    for (const policy of ['open', 'closed', 'local']) {
      const n = metricValue(m, 'leaky_redis_fallback_total', `policy="${policy}"`)
      t.ok(n > 0, `proxy ${pi}: leaky_redis_fallback_total{policy="${policy}"} = ${n}`)
    }
    t.ok(metricValue(m, 'leaky_redis_decisions_total') > 0, `proxy ${pi}: leaky_redis_decisions_total > 0`)
  }

  const during = between(exact, down, up, byId)
  const durations = during.flat().map((l) => l.duration_ms as number).sort((a, b) => a - b)
  t.comment(`while down: ${durations.length} requests, proxy-side ms p50 ${durations[durations.length >> 1]} p99 ${durations[Math.floor(durations.length * 0.99)]} max ${durations.at(-1)}`)
  assertLatency(t, load, byId)
  assertPolicies(t, during, load, true)

  // after recovery (Redis restarted empty) every limit is exact again
  await measureExact(t, exact, POLICY_PATHS, ['leaky:{c-open}:', 'leaky:{c-closed}:', 'leaky:{c-local}:'], P_RATE, P_BURST, 'recovery', 2500)
  for (let pi = 0; pi < 3; pi++) t.ok(running(exact[pi]), `proxy ${pi} still running`)
})

/**
 * No request waits on Redis past the timeout: on the proxy's own clock (access line) and as the client saw it. The
 * margins are what this shared 2-core machine adds with Redis healthy (event-loop and scheduling stalls of up to
 * ~120 ms were measured on the proxy's clock); a request held until Redis answers again would take the whole outage.
 */
function assertLatency(t: Test, load: Load, byId: Map<string, LogLine>): void {
  const proxyMax = Math.max(...[...byId.values()].map((l) => l.duration_ms as number))
  const clientMax = Math.max(...load.shots.map((s) => s.ms))
  t.ok(proxyMax <= TIMEOUT_MS + 150, `slowest request on the proxy's clock ${proxyMax.toFixed(1)} ms (timeout ${TIMEOUT_MS} ms + 150)`)
  t.ok(clientMax <= TIMEOUT_MS + 350, `slowest request seen by the client ${clientMax.toFixed(1)} ms (timeout ${TIMEOUT_MS} ms + 350)`)
}

t.test('Redis stalled (SIGSTOP) mid-load: answered within the timeout, by policy, then Redis again', async (t) => {
  const marks = exact.map((p) => p.lines.length)
  const load = new Load(exact, POLICY_PATHS, 's')
  await Promise.all(exact.map((p, pi) => p.waitLog((l) => l.msg === 'access' && l.cluster === 'redis' && String(l.req_id).startsWith('s-') && p.lines.indexOf(l) >= marks[pi])))
  const stopMarks = exact.map((p) => p.lines.length)
  const stoppedAt = Date.now()
  process.kill(redis.pid, 'SIGSTOP')
  let down: LogLine[]
  try {
    // connected but silent: only the timeout can tell
    down = await Promise.all(exact.map((p, pi) => p.waitLog((l) => l.msg === 'redis down' && p.lines.indexOf(l) >= stopMarks[pi], 5000)))
    const rest = 1000 - (Date.now() - stoppedAt)
    if (rest > 0) await new Promise((r) => setTimeout(r, rest))
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  const up = await Promise.all(exact.map((p, pi) => p.waitLog((l) => l.msg === 'redis up' && p.lines.indexOf(down[pi]) < p.lines.indexOf(l), 5000)))
  await load.stop()
  const byId = await load.lines()
  for (let pi = 0; pi < 3; pi++) {
    t.match(down[pi].reason, /timed out/, `proxy ${pi}: "redis down" because a command timed out`)
    const m = await scrapeMetrics(exact[pi])
    t.ok(metricValue(m, 'leaky_redis_errors_total', 'kind="timeout"') > 0, `proxy ${pi}: leaky_redis_errors_total{kind="timeout"} > 0`)
    t.ok(running(exact[pi]), `proxy ${pi} still running`)
  }
  const during = between(exact, down, up, byId)
  const durations = during.flat().map((l) => l.duration_ms as number).sort((a, b) => a - b)
  t.comment(`while stalled: ${durations.length} requests, proxy-side ms p50 ${durations[durations.length >> 1]} p99 ${durations[Math.floor(durations.length * 0.99)]} max ${durations.at(-1)}`)
  assertLatency(t, load, byId)
  assertPolicies(t, during, load, false)
})

t.test('lease mode: admitted ≤ 300·T + 30 + N·L (N = 3, L = 10) and ≥ 0.9·300·T', async (t) => {
  await Promise.all(exact.map((p) => p.stop()))
  // keys of the exact run must not count against this one
  await withRedis((c) => c.flushall())
  const lease = await startSet('lease')
  await warmUp(lease, 1000)
  const load = await measure(t, lease, ['/c/'], ['leaky:{c}:'], 'lease', 3000, (lines) => {
    t.ok(lines.every((l) => l.cluster === 'lease'), 'every decision from leased credit')
    const ok = lines.filter((l) => l.status === 200)
    const T = span(ok)
    const exactWant = 300 * T + 30
    const bound = exactWant + 3 * 10
    t.comment(`lease: admitted ${ok.length} over ${T.toFixed(3)} s; 300·T + 30 = ${exactWant.toFixed(1)}; overshoot ${(ok.length - exactWant).toFixed(1)} (bound N·L = 30)`)
    t.ok(T > 2, `measured over ${T.toFixed(3)} s`)
    t.ok(ok.length <= bound, `admitted ${ok.length} ≤ ${bound.toFixed(1)}`)
    t.ok(ok.length >= 300 * T * 0.9, `admitted ${ok.length} ≥ 0.9·300·T = ${(300 * T * 0.9).toFixed(1)} (no starvation)`)
  })
  t.ok(load.shots.every((s) => s.status === 200 || s.status === 429), 'only 200 and 429')
})
