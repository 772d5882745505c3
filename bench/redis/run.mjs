#!/usr/bin/env node
// Issue #7: what a `scope: cluster` limit costs a request, through the real proxy, in one run. Four routes that
// differ only in the limit they charge — none (plain), a local limit, a cluster limit in exact mode (one EVALSHA per
// request), a cluster limit in lease mode (credit leased in the background) — all a small GET to the stub upstream
// through a `provider: none` route. `redis.mode` is per proxy, so two proxies run side by side (`workers: 1` each),
// one with mode exact, one with mode lease, each with the plain and local routes too; one redis-server, started here
// on a free port. The six cases are interleaved in rounds (order rotated each round) so noise hits all alike.
//
// Per round: (a) SEQUENTIAL requests per case, one at a time, the six cases taking turns request by request (routes
// shuffled each turn, proxies alternating), each on its own keep-alive connection (undici): latency p50/p99 in µs; "added" = the case minus the plain route of the
// same proxy (as a difference of percentiles, and as the median of paired differences, request k of the case minus
// request k of plain, sent a few requests apart); (b) per case, autocannon with CONNECTIONS connections for DURATION
// s: req/s, and CPU µs/request of the proxy and of redis-server (/proc). Exact mode's decisions/s at 1 in flight
// (= 1 / mean sequential latency) vs 64 in flight (autocannon req/s) come from those rows; every request of
// the exact route is one Redis decision, checked against leaky_redis_decisions_total at the end. Then (MICRO=1) the
// raw limiter micro bench (bench/micro/redis.mjs, BENCH_SECONDS=1) runs once and its rows go into the same JSON.
//
//   npm run build && node bench/redis/run.mjs      (~50 s; prints a table, writes redis-<ISO>.json to
//   <tmpdir>/leaky-bench/, or to bench/results/ with RECORD=1: bench/record.mjs)
//
// Knobs (env): ROUNDS=3 DURATION=1 (s of autocannon per case per round) CONNECTIONS=64 SEQUENTIAL=1000 MICRO=1
// LOAD_CPUS / SERVER_CPUS / REDIS_CPUS (taskset lists; default: client + stub + redis on the 1st allowed CPU, both
// proxies on the 2nd) REDIS_SERVER=/usr/bin/redis-server RECORD=1 (write bench/results/) RESULTS=DIR (none = do not
// write) LEAKY_CLI.
//
// Limits are far above what the bench reaches (1M/s, burst 1M): every request pays for the full decision, none is
// denied. redis.on_error is `closed` and timeout 1 s, so a Redis failure shows as a 503 (counted as an error, the
// run is marked suspect) instead of hiding in a fallback that would be measured as if it were the Redis path.
import autocannon from 'autocannon'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Client } from 'undici'
import { autocannonRun, version as autocannonVersion } from '../macro/autocannon.mjs'
import { cpuSeconds, hasProc, machineBusySeconds, selfSeconds } from '../macro/cpu.mjs'
import { CLI, cliBuilt, startStub } from '../macro/leaky.mjs'
import { allowedCpus, machine } from '../macro/machine.mjs'
import { run, start, stop, stopAll, waitForJson, which } from '../macro/procs.mjs'
import { writeResults } from '../record.mjs'

const env = process.env
const ROUNDS = posInt('ROUNDS', 3)
const DURATION = posInt('DURATION', 1)
const CONNECTIONS = posInt('CONNECTIONS', 64)
const SEQUENTIAL = posInt('SEQUENTIAL', 1000)
const MICRO = env.MICRO !== '0'
const REDIS_SERVER = env.REDIS_SERVER ?? '/usr/bin/redis-server'
if (!cliBuilt()) fail(`${CLI} is missing: run \`npm run build\` first`)
if (which('redis-server', REDIS_SERVER) === null) fail(`${REDIS_SERVER} not found (apt-get install redis-server, or set REDIS_SERVER)`)

// the routes: same stub request, different limit
const ROUTES = {
  plain: { path: '/plain/__stub/health', limit: 'none' },
  local: { path: '/local/__stub/health', limit: 'local limit (per: global, 1M/s, burst 1M)' },
  cluster: { path: '/cluster/__stub/health', limit: 'cluster limit (per: global, 1M/s, burst 1M)' },
}
// [case name, proxy, route]
const CASES = [
  ['plain', 'exact', 'plain'],
  ['local', 'exact', 'local'],
  ['exact', 'exact', 'cluster'],
  ['plain', 'lease', 'plain'],
  ['local', 'lease', 'local'],
  ['lease', 'lease', 'cluster'],
]

const notes = []
const host = machine() // before pinning: afterwards this process sees only the load CPUs
const tasksetBin = which('taskset', env.TASKSET)
const cpus = allowedCpus()
let loadCpus = env.LOAD_CPUS ?? null
let serverCpus = env.SERVER_CPUS ?? null
if (tasksetBin === null) {
  notes.push('taskset not found: nothing pinned')
  loadCpus = serverCpus = null
} else if (loadCpus === null && serverCpus === null && cpus !== null && cpus.length >= 2) {
  loadCpus = String(cpus[0])
  serverCpus = String(cpus[1])
} else if (loadCpus === null && serverCpus === null) {
  notes.push('fewer than 2 CPUs: nothing pinned')
}
// Redis plays the remote service: by default it shares the load core with client and stub, so the proxies' core
// measures the proxies only (see the README paragraph for what that does to req/s)
const redisCpus = env.REDIS_CPUS ?? loadCpus
const allCpus = cpus === null ? null : cpus.join(',')
if (loadCpus !== null) {
  const r = await run(tasksetBin, ['-a', '-p', '-c', loadCpus, String(process.pid)])
  if (r.code !== 0) fail(`taskset -a -p -c ${loadCpus} ${process.pid}: ${r.stderr.trim()}`)
}
const pin = (list) => ({ taskset: list === null ? null : tasksetBin, cpus: list })

const dir = mkdtempSync(join(tmpdir(), 'leaky-redis-bench-'))
let cleaning = false
async function cleanup() {
  if (cleaning) return
  cleaning = true
  await stopAll()
  rmSync(dir, { recursive: true, force: true })
}
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => cleanup().then(() => process.exit(130)))

const results = {
  version: 1,
  date: new Date().toISOString(),
  command: 'node bench/redis/run.mjs',
  machine: host,
  settings: {
    rounds: ROUNDS,
    duration_s: DURATION,
    connections: CONNECTIONS,
    sequential_per_round: SEQUENTIAL,
    pipelining: 1,
    proxy_workers: 1,
    proxy_cli: CLI,
    proxy_built: statSync(CLI).mtime.toISOString(),
    load_cpus: loadCpus,
    server_cpus: serverCpus,
    redis_cpus: redisCpus,
    autocannon: autocannonVersion,
    redis: null,
    request: 'GET <route>/__stub/health (15-byte JSON) through a provider: none route to `leaky stub`',
    routes: ROUTES,
    redis_section: 'timeout: 1s, on_error: closed, expected_instances: 1; key_prefix per proxy',
  },
  notes,
  rounds: [],
  cases: [],
  decisions: null,
  metrics: {},
  micro: null,
}

const log = (s) => process.stderr.write(`${s}\n`)
let servers
try {
  const redis = await startRedis()
  results.settings.redis = redis.version
  const stub = await startStub(pin(loadCpus))
  const proxies = {}
  for (const mode of ['exact', 'lease']) proxies[mode] = await startProxy(mode, stub.port, redis.port)
  servers = { redis, stub, proxies }
  log(`bench: redis ${redis.version} on ${redis.port}; proxies exact :${proxies.exact.port}, lease :${proxies.lease.port}; ` +
    `client+stub on CPU ${loadCpus ?? 'any'}, redis on ${redisCpus ?? 'any'}, proxies on ${serverCpus ?? 'any'}`)

  // a misrouted bench must fail, not report: every case answers 200 once
  const clients = CASES.map(([, mode]) => new Client(`http://127.0.0.1:${proxies[mode].port}`, { pipelining: 1 }))
  const sent = { exact: 0, lease: 0 }
  const countSent = (i, n) => { if (CASES[i][2] === 'cluster') sent[CASES[i][1]] += n }
  for (let i = 0; i < CASES.length; i++) {
    const [name, mode, route] = CASES[i]
    const r = await get(clients[i], ROUTES[route].path)
    if (r.status !== 200) throw new Error(`${name} (${mode} proxy): GET ${ROUTES[route].path} answered ${r.status} ${r.text.slice(0, 200)}`)
    countSent(i, 1)
  }
  // warm-up: JIT, the upstream pool, Redis connections and the first lease, before anything is measured
  await sequential(clients, 300, 0x5eed)
  for (let i = 0; i < CASES.length; i++) countSent(i, 300 + await burst(proxies[CASES[i][1]].port, ROUTES[CASES[i][2]].path, 3000))

  for (let round = 1; round <= ROUNDS; round++) {
    // (a) one request at a time, the cases taking turns request by request: noise hits them alike
    const seq = await sequential(clients, SEQUENTIAL, round)
    // (b) full concurrency, case after case
    for (let j = 0; j < CASES.length; j++) {
      const i = (j + round - 1) % CASES.length
      const [name, mode, route] = CASES[i]
      const load = await loaded(proxies[mode], ROUTES[route].path, redis.pid, stub.proc.pid)
      countSent(i, SEQUENTIAL + load.requests)
      for (const [m, q] of Object.entries(proxies)) if (q.proc.exited) throw new Error(`${m} proxy exited (${q.proc.code}): ${q.proc.stderr.trim()}`)
      results.rounds.push({ round, case: name, proxy: mode, route, seq: seq[i], load })
      log(`round ${round} ${`${name} (${mode} proxy)`.padEnd(20)} 1 in flight p50 ${seq[i].p50_us.toFixed(0).padStart(4)} µs  ` +
        `${CONNECTIONS} conns ${Math.round(load.rps).toString().padStart(6)} req/s  proxy ${load.proxy_cpu_us_per_req.toFixed(1)} µs CPU/req` +
        `${seq[i].bad + load.errors + load.non2xx > 0 ? `  ${seq[i].bad + load.errors + load.non2xx} errors` : ''}`)
    }
  }
  await Promise.all(clients.map((c) => c.close()))
  // metrics are sampled from the workers every second: wait for the last sample
  await new Promise((r) => setTimeout(r, 1500))
  for (const [mode, p] of Object.entries(proxies)) results.metrics[mode] = await redisMetrics(p.adminPort)
  results.sent_to_cluster_route = sent
} catch (err) {
  log(`bench: ${err.message}`)
  await cleanup()
  process.exit(1)
}
await stop(servers.proxies.exact.proc)
await stop(servers.proxies.lease.proc)
await stop(servers.stub.proc)
await stop(servers.redis.proc)

if (MICRO) {
  log('bench: bench/micro/redis.mjs (BENCH_SECONDS=1)')
  results.micro = await micro()
}
await cleanup()

summarise()
print()
writeResults(`redis-${results.date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`, results)

// ── servers ──────────────────────────────────────────────────────────────────────────────────────────────────────

async function startRedis() {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const proc = start(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], pin(redisCpus))
    const ok = await new Promise((resolve) => {
      const check = () => {
        if (!proc.stdout.includes('Ready to accept connections')) return
        proc.child.stdout.off('data', check)
        resolve(true)
      }
      proc.child.stdout.on('data', check)
      proc.exit.then(() => resolve(false))
      check()
    })
    if (ok) {
      const v = /version=(\d+\.\d+\.\d+)/.exec(proc.stdout)
      return { proc, pid: proc.pid, port, version: v === null ? 'unknown' : v[1] }
    }
    // the port was taken between freePort() and redis's bind: another free port
    if (attempt >= 4) throw new Error(`redis-server did not start: ${proc.stderr.trim() || proc.stdout.slice(-300)}`)
  }
}

function proxyConfig(mode, upstreamPort, redisPort) {
  return `# written by bench/redis/run.mjs
listen: 127.0.0.1:0
workers: 1
drain_timeout: 2s
log: { level: info, access: false }
admin: { listen: 127.0.0.1:0 }
redis:
  url: redis://127.0.0.1:${redisPort}
  key_prefix: "bench-${mode}:"
  timeout: 1s
  mode: ${mode}
  on_error: closed
  expected_instances: 1
limits:
  local: { per: global, requests: 1M/s, burst: 1000000 }
  cluster: { per: global, requests: 1M/s, burst: 1000000, scope: cluster }
upstreams:
  stub: { provider: none, targets: ["http://127.0.0.1:${upstreamPort}"], pool: { connections: ${Math.max(64, CONNECTIONS)} } }
routes:
  - { path: /plain/, upstream: stub, strip_prefix: true }
  - { path: /local/, upstream: stub, strip_prefix: true, limits: [local] }
  - { path: /cluster/, upstream: stub, strip_prefix: true, limits: [cluster] }
`
}

async function startProxy(mode, upstreamPort, redisPort) {
  const file = join(dir, `leaky-${mode}.yaml`)
  writeFileSync(file, proxyConfig(mode, upstreamPort, redisPort))
  const proc = start(process.execPath, [CLI, 'start', '-c', file], { ...pin(serverCpus), cwd: dir })
  const line = await waitForJson(proc, (v) => v.msg === 'ready', 20000)
  return { proc, port: line.port, adminPort: line.admin_port }
}

// ── measurements ─────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * `n` requests per case, one at a time, each case on its own keep-alive connection. Each turn sends every case
 * once: the routes in a shuffled order, each to the exact proxy then the lease proxy, so every request follows one
 * to the other proxy (a proxy's first request after an idle spell pays for waking up: a fixed order would charge that
 * to whichever case always came first). Per case: latency of each request as the client sees it, and the non-200s.
 */
async function sequential(clients, n, seed) {
  const lat = clients.map(() => new Float64Array(n))
  const bad = clients.map(() => 0)
  const random = mulberry32(seed)
  const routes = Object.keys(ROUTES)
  for (let k = 0; k < n; k++) {
    for (let a = routes.length - 1; a > 0; a--) {
      const b = Math.floor(random() * (a + 1))
      const t = routes[a]
      routes[a] = routes[b]
      routes[b] = t
    }
    for (const route of routes) {
      for (const mode of ['exact', 'lease']) {
        const i = CASES.findIndex((c) => c[1] === mode && c[2] === route)
        const t0 = performance.now()
        const r = await get(clients[i], ROUTES[route].path)
        lat[i][k] = performance.now() - t0
        if (r.status !== 200) bad[i]++
      }
    }
  }
  return lat.map((l, i) => ({ n, bad: bad[i], ...latencyStats(l) }))
}

/** A small seeded PRNG: the same request order on every run. */
function mulberry32(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

async function get(client, path) {
  const res = await client.request({ path, method: 'GET' })
  return { status: res.statusCode, text: await res.body.text() }
}

function latencyStats(lat) {
  const sorted = Float64Array.from(lat).sort()
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] * 1000
  let sum = 0
  for (const v of sorted) sum += v
  return { p50_us: q(0.5), p99_us: q(0.99), mean_us: (sum / sorted.length) * 1000, samples_ms: lat }
}

/** A warm-up of `amount` requests at full concurrency; resolves how many completed. */
function burst(port, path, amount) {
  return new Promise((resolve, reject) => {
    autocannon({ url: `http://127.0.0.1:${port}${path}`, connections: CONNECTIONS, pipelining: 1, amount }, (err, r) => {
      if (err) reject(err)
      else resolve(r.requests.total)
    })
  })
}

/** autocannon for DURATION s at CONNECTIONS connections, with the CPU of proxy, redis, stub and client around it. */
async function loaded(p, path, redisPid, stubPid) {
  const sample = () => ({ proxy: cpuSeconds(p.proc.pid), redis: cpuSeconds(redisPid), stub: cpuSeconds(stubPid), machine: hasProc ? machineBusySeconds() : NaN, client: hasProc ? selfSeconds() : NaN })
  const before = sample()
  const t0 = performance.now()
  const r = await autocannonRun({ url: `http://127.0.0.1:${p.port}`, scenario: { path, method: 'GET', headers: {}, body: null }, connections: CONNECTIONS, seconds: DURATION })
  const wall = (performance.now() - t0) / 1000
  const after = sample()
  const used = (k) => after[k] - before[k]
  // CPU that neither the proxy, redis, the stub nor this client used: other programs on this (shared) machine
  const others = used('machine') - used('proxy') - used('redis') - used('stub') - used('client')
  return {
    requests: r.requests,
    seconds: r.seconds,
    rps: r.rps,
    p50_ms: r.p50,
    p99_ms: r.p99,
    errors: r.errors,
    non2xx: r.non2xx,
    proxy_cpu_s: used('proxy'),
    redis_cpu_s: used('redis'),
    proxy_cpu_us_per_req: (used('proxy') * 1e6) / r.requests,
    redis_cpu_us_per_req: (used('redis') * 1e6) / r.requests,
    others_cpu_pct: Math.max(0, (others / wall) * 100),
  }
}

/** The leaky_redis_* series of one proxy's /metrics: { "name{labels}": value }. */
async function redisMetrics(adminPort) {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`)
  const text = await res.text()
  const out = {}
  for (const line of text.split('\n')) {
    const m = /^(leaky_redis_\w+(?:\{[^}]*\})?)\s+(\S+)$/.exec(line)
    if (m !== null) out[m[1]] = Number(m[2])
  }
  return out
}

/** bench/micro/redis.mjs once, on all allowed CPUs (this process is pinned to the load CPU); its table parsed. */
async function micro() {
  const script = fileURLToPath(new URL('../micro/redis.mjs', import.meta.url))
  const argv = tasksetBin !== null && allCpus !== null ? [tasksetBin, ['-c', allCpus, process.execPath, script]] : [process.execPath, [script]]
  const child = spawn(argv[0], argv[1], { env: { ...env, BENCH_SECONDS: '1', REDIS_SERVER }, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (s) => { out += s })
  const [code] = await once(child, 'exit')
  if (code !== 0) {
    notes.push(`bench/micro/redis.mjs exited with ${code}: micro rows missing`)
    return null
  }
  const rows = []
  for (const line of out.split('\n')) {
    const m = /^(.+?)\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$/.exec(line)
    if (m !== null) rows.push({ case: m[1], decisions_per_s: Number(m[2].replace(/,/g, '')), p50_us: Number(m[3]), p99_us: Number(m[4]), errors: Number(m[5]) })
  }
  return { command: 'BENCH_SECONDS=1 node bench/micro/redis.mjs', machine_line: out.split('\n').find((l) => l.startsWith('machine:')) ?? null, rows }
}

// ── results ──────────────────────────────────────────────────────────────────────────────────────────────────────

/** Rounds merged per case (latency over all sequential samples; req/s and CPU as sums), ratios to plain. */
function summarise() {
  for (const [name, mode, route] of CASES) {
    const rs = results.rounds.filter((r) => r.case === name && r.proxy === mode)
    const all = new Float64Array(rs.reduce((n, r) => n + r.seq.samples_ms.length, 0))
    let at = 0
    for (const r of rs) {
      all.set(r.seq.samples_ms, at)
      at += r.seq.samples_ms.length
    }
    const seq = latencyStats(all)
    delete seq.samples_ms
    const sum = (k) => rs.reduce((s, r) => s + r.load[k], 0)
    const median = (k) => rs.map((r) => r.load[k]).sort((a, b) => a - b)[Math.floor(rs.length / 2)]
    const requests = sum('requests')
    results.cases.push({
      case: name,
      proxy: mode,
      route,
      limit: ROUTES[route].limit,
      seq_requests: all.length,
      seq_errors: rs.reduce((s, r) => s + r.seq.bad, 0),
      p50_us: seq.p50_us,
      p99_us: seq.p99_us,
      mean_us: seq.mean_us,
      rps_1_in_flight: 1e6 / seq.mean_us,
      requests,
      rps: requests / sum('seconds'),
      load_p50_ms: median('p50_ms'),
      load_p99_ms: median('p99_ms'),
      errors: sum('errors') + sum('non2xx'),
      proxy_cpu_us_per_req: (sum('proxy_cpu_s') * 1e6) / requests,
      redis_cpu_us_per_req: (sum('redis_cpu_s') * 1e6) / requests,
      others_cpu_pct: median('others_cpu_pct'),
    })
  }
  for (const c of results.cases) {
    const plain = results.cases.find((p) => p.case === 'plain' && p.proxy === c.proxy)
    // the k-th request of a case and of its plain route went out a few requests apart: their difference, median
    // over all pairs, is the added latency with the machine's noise mostly cancelled
    const diffs = []
    for (const r of results.rounds.filter((x) => x.case === c.case && x.proxy === c.proxy)) {
      const base = results.rounds.find((x) => x.case === 'plain' && x.proxy === c.proxy && x.round === r.round).seq.samples_ms
      for (let k = 0; k < base.length; k++) diffs.push(r.seq.samples_ms[k] - base[k])
    }
    c.added_paired_median_us = latencyStats(diffs).p50_us
    c.added_p50_us = c.p50_us - plain.p50_us
    c.added_p99_us = c.p99_us - plain.p99_us
    c.rps_vs_plain = c.rps / plain.rps
    c.cpu_vs_plain = c.proxy_cpu_us_per_req / plain.proxy_cpu_us_per_req
  }
  for (const r of results.rounds) delete r.seq.samples_ms
  const exact = results.cases.find((c) => c.case === 'exact')
  results.decisions = {
    exact_1_in_flight_per_s: exact.rps_1_in_flight,
    exact_n_in_flight_per_s: exact.rps,
    in_flight: CONNECTIONS,
    ratio: exact.rps / exact.rps_1_in_flight,
    // what one Redis core could decide at this batching, from the CPU it spent per decision under load
    redis_core_capacity_per_s: 1e6 / exact.redis_cpu_us_per_req,
    redis_decisions_total: series(results.metrics.exact, 'leaky_redis_decisions_total'),
    sent_to_exact_route: results.sent_to_cluster_route?.exact ?? null,
  }
  if (results.cases.some((c) => c.errors + c.seq_errors > 0)) notes.push('some requests failed or were not 200 (column "errors"): those rows are suspect')
  if (results.cases.some((c) => c.others_cpu_pct > 20)) notes.push('other programs used over 20% of a core during some load windows (column "others %"): the machine was shared')
  const fails = Object.entries(results.metrics).flatMap(([mode, ms]) => Object.entries(ms)
    .filter(([k, v]) => (k.startsWith('leaky_redis_errors_total') || k.startsWith('leaky_redis_fallback_total')) && v > 0)
    .map(([k, v]) => `${mode}: ${k} = ${v}`))
  if (fails.length > 0) notes.push(`Redis errors or fallbacks during the run (${fails.join(', ')}): some cluster decisions did not reach Redis`)
  if (results.decisions.redis_decisions_total === null) notes.push('leaky_redis_decisions_total missing from /metrics: exact decisions not cross-checked')
  else if (results.decisions.redis_decisions_total < 0.99 * results.decisions.sent_to_exact_route) {
    notes.push(`exact proxy counted ${results.decisions.redis_decisions_total} Redis decisions for ${results.decisions.sent_to_exact_route} requests sent to its cluster route`)
  }
  results.decisions.lease_renewals_total = series(results.metrics.lease, 'leaky_redis_lease_renewals_total')
  if (results.decisions.lease_renewals_total === null) notes.push('leaky_redis_lease_renewals_total missing from /metrics')
}

/** Sum of every series of metric `name` (any labels) in one proxy's scrape; null when there is none. */
function series(scrape, name) {
  let total = null
  for (const [k, v] of Object.entries(scrape ?? {})) if (k === name || k.startsWith(`${name}{`)) total = (total ?? 0) + v
  return total
}

function print() {
  const f = (v, d = 0) => (v === null || v === undefined || Number.isNaN(v) ? '–' : v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }))
  const signed = (v) => (v >= 0 ? '+' : '') + f(v)
  const x = (v) => `${v.toFixed(2)}×`
  const head = ['case', 'proxy', 'p50 µs', 'p99 µs', 'added p50 µs', 'added p99 µs', 'added, paired µs', `req/s @${CONNECTIONS}`, 'req/s ÷ plain',
    'proxy CPU µs/req', 'CPU ÷ plain', 'redis CPU µs/req', 'errors', 'others %']
  const rows = results.cases.map((c) => [c.case, c.proxy, f(c.p50_us), f(c.p99_us), c.case === 'plain' ? '' : signed(c.added_p50_us),
    c.case === 'plain' ? '' : signed(c.added_p99_us), c.case === 'plain' ? '' : signed(c.added_paired_median_us), f(c.rps), c.case === 'plain' ? '' : x(c.rps_vs_plain),
    f(c.proxy_cpu_us_per_req, 1), c.case === 'plain' ? '' : x(c.cpu_vs_plain), f(c.redis_cpu_us_per_req, 1),
    String(c.errors + c.seq_errors), f(c.others_cpu_pct)])
  const out = [`machine: ${host.nproc} × ${host.cpu}, load ${host.loadavg_at_start.join(' ')}; node ${host.node}; commit ${host.commit}; redis ${results.settings.redis}`,
    `settings: ${ROUNDS} rounds × (${SEQUENTIAL} sequential GETs + ${DURATION} s autocannon at ${CONNECTIONS} connections) per case; ` +
    `client+stub CPU ${loadCpus ?? 'any'}, redis CPU ${redisCpus ?? 'any'}, proxies CPU ${serverCpus ?? 'any'}`, '', table(head, rows, 2)]
  const d = results.decisions
  out.push('', `exact mode, Redis decisions/s through the proxy: 1 in flight ${f(d.exact_1_in_flight_per_s)} (1 / mean latency), ` +
    `${d.in_flight} in flight ${f(d.exact_n_in_flight_per_s)} = ${x(d.ratio)}; redis-server CPU ${f(1e6 / d.redis_core_capacity_per_s, 1)} µs/decision ` +
    `under load (≈ ${f(d.redis_core_capacity_per_s)} decisions/s per Redis core); decisions counted ${f(d.redis_decisions_total)} for ${f(d.sent_to_exact_route)} requests sent`)
  if (results.micro !== null) {
    out.push('', `bench/micro/redis.mjs, same run (${results.micro.command}; a decision = 2 limits, limiter called directly, no HTTP):`, '')
    out.push(table(['case', 'decisions/s', 'p50 µs', 'p99 µs', 'errors'],
      results.micro.rows.map((r) => [r.case, f(r.decisions_per_s), f(r.p50_us, 1), f(r.p99_us, 1), String(r.errors)]), 1))
  }
  for (const n of notes) out.push(`note: ${n}`)
  process.stdout.write(`\n${out.join('\n')}\n`)
}

function table(head, rows, leftCols) {
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells) => `| ${cells.map((c, i) => (i < leftCols ? c.padEnd(width[i]) : c.padStart(width[i]))).join(' | ')} |`
  const rule = `|${width.map((w, i) => (i < leftCols ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|')}|`
  return [line(head), rule, ...rows.map(line)].join('\n')
}

// ── plumbing ─────────────────────────────────────────────────────────────────────────────────────────────────────

function posInt(name, def) {
  const v = Number(env[name] ?? def)
  if (!Number.isInteger(v) || v < 1) fail(`${name}: expected a whole number ≥ 1, got "${env[name]}"`)
  return v
}

function fail(message) {
  process.stderr.write(`bench: ${message}\n`)
  process.exit(1)
}

async function freePort() {
  const s = net.createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const p = s.address().port
  s.close()
  await once(s, 'close')
  return p
}
