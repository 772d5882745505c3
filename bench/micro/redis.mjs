// Redis backend micro-benchmark, all cases in the same run against one redis-server it starts on a free port:
// decisions/s and added latency per decision of the local SAB limiter, exact mode (one request at a time, then 64 in
// flight without and with ioredis auto-pipelining) and lease mode. Plain node on dist/ (npx tsc -p tsconfig.build.json).
//
//   node bench/micro/redis.mjs        (~15 s; BENCH_SECONDS=2 per case; REDIS_SERVER=/usr/bin/redis-server)
//
// A decision = one request charging 2 cluster limits (key rpm + org tpm) all or nothing. Rates are high so that
// decisions admit: this measures the path, not denials. Latency is per decide() call as the caller sees it.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import os from 'node:os'
import { compileLimit } from '../../dist/limiter/limit.js'
import { Charges, chargeAll } from '../../dist/limiter/policy.js'
import { RedisCharges, RedisLimiter } from '../../dist/limiter/redis.js'
import { RedisLease } from '../../dist/limiter/redis-lease.js'
import { BucketTable, Status } from '../../dist/limiter/table.js'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 64)
const rpm = compileLimit({ name: 'key-rpm', per: 'key', unit: 'requests', amount: 1e8, period_ms: 1000, burst: 1e7 })
const tpm = compileLimit({ name: 'org-tpm', per: 'org', unit: 'tokens', amount: 1e9, period_ms: 1000, burst: 1e8 })
const KEYS = Array.from({ length: 1000 }, (_, i) => `user-${i}`)

const port = await freePort()
const server = spawn(process.env.REDIS_SERVER ?? '/usr/bin/redis-server',
  ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
await new Promise((resolve, reject) => {
  let out = ''
  server.stdout.on('data', (d) => { out += d; if (out.includes('Ready to accept connections')) resolve() })
  server.once('exit', () => reject(new Error('redis-server exited')))
})
const section = (prefix) => ({ url: `redis://127.0.0.1:${port}`, key_prefix: prefix, timeout: 1000, mode: 'exact', on_error: 'open', expected_instances: 1 })

const rows = []
try {
  rows.push(await local())
  rows.push(await exact('exact, 1 in flight', 1, false))
  rows.push(await exact(`exact, ${INFLIGHT} in flight`, INFLIGHT, false))
  rows.push(await exact(`exact, ${INFLIGHT} in flight, auto-pipelining`, INFLIGHT, true))
  rows.push(await lease())
} finally {
  process.kill(server.pid, 'SIGTERM')
}
console.log(`machine: ${os.cpus().length} × ${os.cpus()[0].model}, load ${os.loadavg()[0].toFixed(1)}; node ${process.version}; ${SECONDS} s per case`)
console.log('case'.padEnd(42) + 'decisions/s'.padStart(13) + 'p50 µs'.padStart(10) + 'p99 µs'.padStart(10) + 'errors'.padStart(8))
for (const r of rows) {
  console.log(r.name.padEnd(42) + fmt(r.rate).padStart(13) + r.p50.toFixed(1).padStart(10) + r.p99.toFixed(1).padStart(10) + String(r.errors).padStart(8))
}

async function local() {
  const table = BucketTable.create(1 << 16)
  const req = new Charges()
  const r = await syncCase((key) => {
    req.clear()
    req.add(rpm, key, 1)
    req.add(tpm, 'org', 100)
    chargeAll(table, req, table.clock.now())
  }, false)
  return row('local SAB (chargeAll, same thread)', r.n, r.ms, r.lat, 0)
}

async function exact(name, inflight, autoPipelining) {
  const rl = new RedisLimiter(section(`b${inflight}${autoPipelining ? 'p' : ''}:`), { client: { enableAutoPipelining: autoPipelining } })
  await rl.ready()
  const lat = []
  let n = 0
  let k = 0
  const t0 = performance.now()
  const until = t0 + SECONDS * 1000
  async function loop() {
    const req = new RedisCharges()
    while (performance.now() < until) {
      req.clear()
      req.add(rpm, KEYS[k], 1)
      req.add(tpm, 'org', 100)
      k = (k + 1) % KEYS.length
      const s = performance.now()
      await rl.decide(req)
      lat.push(performance.now() - s)
      n++
    }
  }
  await Promise.all(Array.from({ length: inflight }, loop))
  const r = row(name, n, performance.now() - t0, lat, rl.errors)
  await rl.close()
  return r
}

async function lease() {
  const rl = new RedisLimiter({ ...section('bl:'), mode: 'lease' })
  await rl.ready()
  const ls = new RedisLease(rl)
  const req = new RedisCharges()
  // batches yield to the event loop: renewals come back between them, as requests arriving by I/O would let them
  const r = await syncCase((key) => {
    req.clear()
    req.add(rpm, key, 1)
    req.add(tpm, 'org', 100)
    ls.take(req)
  }, true)
  const out = row('lease (take from credit)', r.n, r.ms, r.lat, ls.failures)
  await ls.close()
  await rl.close()
  return out
}

// Synchronous decisions for SECONDS in batches of 256 (one latency sample in 64), cycling through KEYS; `yieldEach`
// lets the event loop run between batches.
async function syncCase(decide, yieldEach) {
  const lat = []
  let n = 0
  let k = 0
  const t0 = performance.now()
  const until = t0 + SECONDS * 1000
  while (performance.now() < until) {
    for (let i = 0; i < 256; i++) {
      const s = performance.now()
      decide(KEYS[k])
      if ((n & 63) === 0) lat.push(performance.now() - s)
      k = (k + 1) % KEYS.length
      n++
    }
    if (yieldEach) await new Promise(setImmediate)
  }
  return { n, ms: performance.now() - t0, lat }
}

function row(name, n, ms, lat, errors) {
  lat.sort((a, b) => a - b)
  const q = (p) => (lat.length === 0 ? 0 : lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] * 1000)
  return { name, rate: (n / ms) * 1000, p50: q(0.5), p99: q(0.99), errors }
}

function fmt(x) {
  return Math.round(x).toLocaleString('en-US')
}

async function freePort() {
  const s = net.createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const p = s.address().port
  s.close()
  return p
}
