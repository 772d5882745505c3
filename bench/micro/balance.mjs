// Balancing bench (issue 17): proxy CPU per request with `balance: p2c_least_inflight` over 4 targets vs the same
// upstream with 1 target, and round_robin over the same 4 (what 4 pools cost without p2c), in the same run: the proxy (dist/, 1 worker) serves both routes at once; the phases
// alternate one/four ROUNDS times so machine noise falls on both alike. CPU is the proxy's whole process tree
// (/proc, bench/macro/cpu.mjs); the targets (plain node:http servers) run in a child process of their own, the load
// (undici, CONNECTIONS keep-alive connections) in this one, neither counted.
//   npm run build && node bench/micro/balance.mjs      (~55 s; PHASE=3 s ROUNDS=4 CONNECTIONS=16)
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { cpuSeconds, hasProc } from '../macro/cpu.mjs'
import { writeResults } from '../record.mjs'

const PHASE = Number(process.env.PHASE ?? 3) * 1000
const ROUNDS = Number(process.env.ROUNDS ?? 4)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 16)
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
if (!hasProc) throw new Error('needs /proc (Linux) to read the proxy\'s CPU time')

function lines(child, pred) {
  return new Promise((resolve, reject) => {
    let buf = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (d) => {
      buf += d
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i)
        buf = buf.slice(i + 1)
        const v = pred(l)
        if (v !== undefined) resolve(v)
      }
    })
    child.on('exit', (c) => reject(new Error(`exited ${c}`)))
  })
}

// four targets answering a small JSON body, like a fast upstream
const targets = spawn(process.execPath, ['-e', `
  const http = require('node:http')
  const body = JSON.stringify({ ok: true, text: 'x'.repeat(200) })
  let n = 0
  for (let i = 0; i < 4; i++) http.createServer((q, s) => s.writeHead(200, { 'content-type': 'application/json' }).end(body))
    .listen(0, '127.0.0.1', function () { console.log('port ' + this.address().port); if (++n === 4) console.log('ready') })
`], { stdio: ['ignore', 'pipe', 'inherit'] })
const ports = []
await lines(targets, (l) => {
  if (l.startsWith('port ')) ports.push(Number(l.slice(5)))
  return l === 'ready' ? true : undefined
})

const dir = mkdtempSync(path.join(tmpdir(), 'leaky-bench-balance-'))
const cfg = path.join(dir, 'leaky.yaml')
writeFileSync(cfg, `listen: 127.0.0.1:0
workers: 1
admin: { listen: 127.0.0.1:0 }
log: { level: info, access: false }
server: { max_inflight: 100000 }
upstreams:
  one: { targets: ["http://127.0.0.1:${ports[0]}"] }
  four: { balance: p2c_least_inflight, targets: [${ports.map((p) => `"http://127.0.0.1:${p}"`).join(', ')}] }
  fourrr: { balance: round_robin, targets: [${ports.map((p) => `"http://127.0.0.1:${p}"`).join(', ')}] }
routes:
  - { path: /one/, upstream: one, strip_prefix: true }
  - { path: /four/, upstream: four, strip_prefix: true }
  - { path: /fourrr/, upstream: fourrr, strip_prefix: true }
`)
const proxy = spawn(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'start', '-c', cfg], {
  stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, LEAKY_RUNTIME_DIR: dir, RUNTIME_DIRECTORY: dir },
})
// however this script ends (an error, a timeout's SIGTERM), nothing it started stays behind
const cleanup = () => {
  proxy.kill('SIGTERM')
  targets.kill('SIGTERM')
  rmSync(dir, { recursive: true, force: true })
}
process.on('exit', cleanup)
process.on('SIGTERM', () => process.exit(143))
const readyTimer = setTimeout(() => {
  console.error('bench: the proxy did not get ready in 60 s')
  process.exit(1)
}, 60_000)
const port = await lines(proxy, (l) => {
  try {
    const j = JSON.parse(l)
    return j.msg === 'ready' ? j.port : undefined
  } catch {
    return undefined
  }
})

clearTimeout(readyTimer)
const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS, pipelining: 1 })
async function phase(route) {
  let n = 0
  let failed = 0
  const end = performance.now() + PHASE
  const cpu0 = cpuSeconds(proxy.pid)
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (performance.now() < end) {
      const r = await pool.request({ path: `/${route}/x`, method: 'GET' })
      await r.body.dump()
      if (r.statusCode === 200) n++
      else failed++
    }
  }))
  const cpu = cpuSeconds(proxy.pid) - cpu0
  return { n, failed, cpuUs: (cpu * 1e6) / n }
}

const rows = { one: [], four: [], fourrr: [] }
try {
  await phase('one') // warm-up (JIT, connections), not counted
  await phase('four')
  await phase('fourrr')
  for (let r = 0; r < ROUNDS; r++) {
    for (const route of r % 2 === 0 ? ['one', 'four', 'fourrr'] : ['fourrr', 'four', 'one']) rows[route].push(await phase(route))
  }
} finally {
  await pool.close()
  proxy.kill('SIGTERM')
  targets.kill('SIGTERM')
  await new Promise((r) => proxy.once('exit', r))
  rmSync(dir, { recursive: true, force: true })
}

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const one = median(rows.one.map((x) => x.cpuUs))
const four = median(rows.four.map((x) => x.cpuUs))
const fourrr = median(rows.fourrr.map((x) => x.cpuUs))
const failed = [...rows.one, ...rows.four, ...rows.fourrr].reduce((a, x) => a + x.failed, 0)
const rps = (k) => Math.round(rows[k].reduce((a, x) => a + x.n, 0) / ((rows[k].length * PHASE) / 1000))
console.log(`| targets | balance | req/s | proxy CPU µs/request (median of ${ROUNDS}) |`)
console.log('|---|---|---|---|')
console.log(`| 1 | p2c_least_inflight | ${rps('one')} | ${one.toFixed(1)} |`)
console.log(`| 4 | p2c_least_inflight | ${rps('four')} | ${four.toFixed(1)} |`)
console.log(`| 4 | round_robin | ${rps('fourrr')} | ${fourrr.toFixed(1)} |`)
console.log(`ratio p2c 4/1: ${(four / one).toFixed(3)} (goal ≤ 1.05); p2c/round_robin over the same 4: ${(four / fourrr).toFixed(3)}; failed requests: ${failed}`)
writeResults(`balance-${new Date().toISOString().slice(0, 19).replace(/:/g, '-')}.json`, { phase_ms: PHASE, rounds: ROUNDS, connections: CONNECTIONS, rows, one_us: one, four_us: four, four_rr_us: fourrr, ratio: four / one, failed })
