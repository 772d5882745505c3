// Limiter micro-benchmark: decisions per second per thread on one shared bucket table, and RSS while 5 M distinct
// keys pass through a 1 M-slot table. Plain node on dist/ (build first: npx tsc -p tsconfig.build.json).
//
//   node bench/micro/limiter.mjs            (~30 s; BENCH_SECONDS=0.2 BENCH_RSS_KEYS=1000000 for a smoke run)
//
// A decision = one clock read + one charge of one bucket (the hot path of a one-limit request). "request" cases
// charge 3 limits all-or-nothing with one clock read, as the limit stage does. Cases, for 1..N threads
// (N = os.availableParallelism()):
//   uncontended-1k    every thread on its own 1,000 keys (working set in cache)
//   uncontended-100k  every thread on its own 100,000 keys (random slots: memory-bound)
//   contended         every thread on the same key (one cache line ping-pongs between cores)
//   request-3         chargeAll of key-rpm + key-tpm + org-tpm per request, own 1,000 keys per thread
//   one-key           (1 thread) issue 16's target case: one key, ≥ 10 M decisions/s/thread
//   keys-100k         (1 thread) issue 16's target case: 100,000 keys, ≥ 5 M decisions/s/thread
// one-key and keys-100k are also run as "charge only": the clock read once per 1024 charges instead of per charge,
// which separates the table's own cost from process.hrtime.bigint() (a request reads the clock once for all its
// limits, so with 3 limits it pays a third of a clock read per charge).
// RSS, two runs on this thread: (1) issue 16's target, 10 M decisions from 1 M distinct keys (each a fresh string, as
// a request's would be) through a 2 M-slot table, RSS sampled every 1 M; (2) churn: BENCH_RSS_KEYS (5 M) distinct
// keys through a 1 M-slot table with evict_idle, every key new.
// Results: a table on stdout, JSON as limiter.json in <tmpdir>/leaky-bench/, or in bench/results/ with RECORD=1
// (bench/record.mjs).
import { fork } from 'node:child_process'
import os from 'node:os'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { compileLimit } from '../../dist/limiter/limit.js'
import { Charges, chargeAll } from '../../dist/limiter/policy.js'
import { BucketTable, Status } from '../../dist/limiter/table.js'
import { writeResults } from '../record.mjs'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const RSS_KEYS = Number(process.env.BENCH_RSS_KEYS ?? 5_000_000)
const RSS_DECISIONS = Number(process.env.BENCH_RSS_DECISIONS ?? 10_000_000)
// rates high enough that most decisions admit: the bench measures the CAS path, not the deny path
const perKey = { name: 'key-rpm', per: 'key', unit: 'requests', amount: 1e9, period_ms: 1000, burst: 1e6 }
const perKeyTokens = { name: 'key-tpm', per: 'key', unit: 'tokens', amount: 1e9, period_ms: 1000, burst: 1e8 }
const perOrg = { name: 'org-tpm', per: 'org', unit: 'tokens', amount: 1e9, period_ms: 1000, burst: 1e8 }

let CHARGE_ONLY = false

if (process.argv[2] === 'rss-target' || process.argv[2] === 'rss-churn') {
  // an RSS run in a process of its own, so no earlier case's table or heap is in its figures
  process.send(process.argv[2] === 'rss-target' ? rssTarget() : rssRun())
  process.disconnect()
} else if (!isMainThread) {
  const { sab, sync, scenario, index, chargeOnly } = workerData
  CHARGE_ONLY = chargeOnly
  const table = BucketTable.attach(sab)
  const flag = new Int32Array(sync)
  parentPort.postMessage('ready')
  Atomics.wait(flag, 0, 0)
  parentPort.postMessage(run(table, scenario, index))
} else {
  await main()
}

function keysFor(index, n) {
  return Array.from({ length: n }, (_, i) => `t${index}-user-${i}`)
}

function run(table, scenario, index) {
  const rpm = compileLimit(perKey)
  const tpm = compileLimit(perKeyTokens)
  const org = compileLimit(perOrg)
  const one = scenario === 'contended' || scenario === 'one-key'
  const keys = one ? ['shared'] : keysFor(index, scenario === 'uncontended-100k' || scenario === 'keys-100k' ? 100_000 : 1000)
  const chargeOnly = CHARGE_ONLY
  const mask = keys.length
  const req = new Charges()
  const orgName = `org-${index}`
  let n = 0
  let ok = 0
  let k = 0
  // every key inserted before the clock starts: the cases measure decisions on live buckets, not first inserts
  for (const key of keys) table.charge(rpm, key, 1, table.clock.now())
  const t0 = performance.now()
  const until = t0 + SECONDS * 1000
  for (;;) {
    const batchNow = table.clock.now()
    for (let i = 0; i < 1024; i++) {
      const now = chargeOnly ? batchNow : table.clock.now()
      const key = keys[k]
      k = k + 1 === mask ? 0 : k + 1
      if (scenario === 'request-3') {
        req.clear()
        req.add(rpm, key, 1)
        req.add(tpm, key, 100)
        req.add(org, orgName, 100)
        if (chargeAll(table, req, now) === Status.OK) ok++
      } else if (table.charge(rpm, key, 1, now) === Status.OK) ok++
    }
    n += 1024
    if (performance.now() >= until) break
  }
  const seconds = (performance.now() - t0) / 1000
  return { decisions: n, ok, seconds }
}

async function runCase(scenario, threads, chargeOnly = false) {
  const table = BucketTable.create(1 << 21) // 2 M slots: room for 100k keys per thread at a low load factor
  const sync = new SharedArrayBuffer(4)
  const workers = Array.from({ length: threads }, (_, index) =>
    new Worker(new URL(import.meta.url), { workerData: { sab: table.sab, sync, scenario, index, chargeOnly } }))
  await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))))
  const results = workers.map((w) => new Promise((r) => w.once('message', r)))
  Atomics.store(new Int32Array(sync), 0, 1)
  Atomics.notify(new Int32Array(sync), 0)
  const rs = await Promise.all(results)
  await Promise.all(workers.map((w) => w.terminate()))
  const perThread = rs.map((r) => r.decisions / r.seconds)
  const total = perThread.reduce((a, b) => a + b, 0)
  return {
    scenario: chargeOnly ? `${scenario} (charge only)` : scenario,
    threads,
    perThreadMps: +(total / threads / 1e6).toFixed(2),
    totalMps: +(total / 1e6).toFixed(2),
    admitted: +(rs.reduce((a, r) => a + r.ok, 0) / rs.reduce((a, r) => a + r.decisions, 0)).toFixed(3),
  }
}

// Issue 16's RSS target: 10 M decisions from 1 M distinct keys, round robin, each key string built per decision.
// The table (2 M slots, fixed) is allocated and zero-filled up front, so RSS is touched-table + heap: a flat curve
// after the first pass says nothing per key or per decision is retained.
function rssTarget() {
  const N = RSS_DECISIONS
  const K = 1_000_000
  const table = BucketTable.create(2_000_000, 'evict_idle')
  const limit = compileLimit({ name: 'user', per: 'key', unit: 'requests', amount: 100, period_ms: 1000, burst: 100 })
  const samples = []
  const mb = (n) => +(n / 2 ** 20).toFixed(1)
  const t0 = performance.now()
  let ok = 0
  for (let i = 0; i < N; i++) {
    if (table.charge(limit, `user-${i % K}`, 1, table.clock.now()) === Status.OK) ok++
    if ((i + 1) % 1_000_000 === 0) {
      const m = process.memoryUsage()
      samples.push({ decisions: i + 1, rssMB: mb(m.rss), heapUsedMB: mb(m.heapUsed) })
    }
  }
  const seconds = (performance.now() - t0) / 1000
  const rss = samples.map((s) => s.rssMB)
  const after = rss.slice(1) // from the end of the first pass over the 1 M keys
  return {
    decisions: N,
    distinctKeys: K,
    tableMB: +(table.sab.byteLength / 2 ** 20).toFixed(1),
    samples,
    growthFromFirstMillionPct: +(((Math.max(...after) - rss[0]) / rss[0]) * 100).toFixed(1),
    spreadAfterFirstMillionPct: +(((Math.max(...after) - Math.min(...after)) / Math.min(...after)) * 100).toFixed(1),
    decisionsPerSecond: Math.round(N / seconds),
    admitted: ok,
    stats: table.stats(),
  }
}

// 5 M distinct keys through a 1 M-slot table on this thread; virtual time advances 1 µs a key and a bucket holds
// 0.8 s, so ~800k buckets are live at any moment and the rest are reclaimed (or evicted) as new keys arrive.
function rssRun() {
  const table = BucketTable.create(1_000_000, 'evict_idle')
  const limit = compileLimit({ name: 'user', per: 'key', unit: 'requests', amount: 1, period_ms: 800, burst: 1 })
  const base = table.clock.now()
  const samples = []
  const mb = () => +(process.memoryUsage.rss() / 2 ** 20).toFixed(1)
  const t0 = performance.now()
  let full = 0
  const every = RSS_KEYS / 10
  for (let i = 0; i < RSS_KEYS; i++) {
    if (table.charge(limit, `user-${i}`, 1, base + BigInt(i) * 1000n) !== Status.OK) full++
    if ((i + 1) % every === 0) samples.push({ keys: i + 1, rssMB: mb() })
  }
  const seconds = (performance.now() - t0) / 1000
  const warm = samples.slice(2).map((s) => s.rssMB) // after 2/10 of the keys (1 M of 5 M) every slot has been touched
  const spread = (Math.max(...warm) - Math.min(...warm)) / Math.min(...warm)
  return {
    tableMB: +(table.sab.byteLength / 2 ** 20).toFixed(1),
    samples,
    flatWithin: +(spread * 100).toFixed(1),
    keysPerSecond: Math.round(RSS_KEYS / seconds),
    notAdmitted: full,
    stats: table.stats(),
    occupancy: table.occupancy(base + BigInt(RSS_KEYS) * 1000n),
  }
}

function inChild(which) {
  return new Promise((resolve, reject) => {
    const child = fork(new URL(import.meta.url), [which])
    child.once('message', resolve)
    child.once('exit', (code) => reject(new Error(`${which} exited with ${code} before reporting`)))
  })
}

async function main() {
  const n = os.availableParallelism()
  const threadCounts = [...new Set([1, n])]
  const cases = []
  for (const scenario of ['uncontended-1k', 'uncontended-100k', 'contended', 'request-3']) {
    for (const threads of threadCounts) {
      const r = await runCase(scenario, threads)
      cases.push(r)
      console.log(`${scenario.padEnd(18)} threads ${threads}  ${String(r.perThreadMps).padStart(6)} M/s per thread  ` +
        `${String(r.totalMps).padStart(6)} M/s total  (admitted ${r.admitted})`)
    }
  }
  const targets = []
  for (const [scenario, min] of [['one-key', 10], ['keys-100k', 5]]) {
    for (const chargeOnly of [false, true]) {
      const r = { ...(await runCase(scenario, 1, chargeOnly)), targetMps: min }
      targets.push(r)
      console.log(`${r.scenario.padEnd(28)} 1 thread  ${String(r.perThreadMps).padStart(6)} M/s  (target ≥ ${min} M/s: ` +
        `${r.perThreadMps >= min ? 'met' : `missed, ${(r.perThreadMps / min * 100).toFixed(0)}% of it`})`)
    }
  }
  console.log(`\nRSS, ${RSS_DECISIONS / 1e6} M decisions from 1 M distinct keys (2 M-slot table):`)
  const rssT = await inChild('rss-target')
  for (const s of rssT.samples) console.log(`  ${String(s.decisions).padStart(9)} decisions  RSS ${s.rssMB} MB  heap ${s.heapUsedMB} MB`)
  console.log(`  growth after the first 1 M: ${rssT.growthFromFirstMillionPct}% (target: flat within 10%); ` +
    `${rssT.decisionsPerSecond} decisions/s`)
  console.log(`\nRSS, ${RSS_KEYS / 1e6} M distinct keys through a 1 M-slot table (evict_idle):`)
  const rss = await inChild('rss-churn')
  for (const s of rss.samples) console.log(`  ${String(s.keys).padStart(8)} keys  ${s.rssMB} MB`)
  console.log(`  table ${rss.tableMB} MB; RSS after warm-up flat within ${rss.flatWithin}%; ${rss.keysPerSecond} keys/s`)
  console.log(`  stats ${JSON.stringify(rss.stats)}`)
  const out = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: n,
    cpuModel: os.cpus()[0]?.model,
    loadavg: os.loadavg(),
    secondsPerCase: SECONDS,
    cases,
    targets,
    rssTarget: rssT,
    rss,
  }
  console.log('')
  writeResults('limiter.json', out)
}
