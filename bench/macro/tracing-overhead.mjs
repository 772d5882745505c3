// Issue-20 measurement: proxy CPU per request for the same 1 KB chat POST through the OpenAI route (one request
// limit, usage accounting) on four proxies started side by side, interleaved rounds, same run: today's build
// without tracing (LEAKY_BASE_CLI, default /work/main's dist when present, else skipped), this build with tracing
// off (no section), sample 1 %, and sample 100 %. The tracing proxies export to an OTLP/HTTP sink in this process
// that reads and discards each export, so the proxy pays for serialising and sending, not for a real collector.
// Each proxy's CPU includes its exporter (the generation's main thread).
// On a shared machine CPU per request drifts with the load between rounds, so each round measures the four back to
// back and the result is the median over rounds of each variant's ratio to `off` in the same round. CPU per
// request also falls as throughput rises (more requests per wake-up), so by default the load is a fixed rate
// (RATE req/s, autocannon --overallRate); RATE=0 drives each proxy flat out with wrk instead.
//   node bench/macro/tracing-overhead.mjs            (ROUNDS=5 DURATION=2 RATE=1000 CONNECTIONS=32, ~60 s)
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join } from 'node:path'
import http from 'node:http'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { CLI, startStub } from './leaky.mjs'
import { start, waitForJson, stop, stopAll, which } from './procs.mjs'
import { cpuSeconds } from './cpu.mjs'
import { wrkRun, wrkScript } from './wrk.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { allowedCpus } from './machine.mjs'

const ROUNDS = Number(process.env.ROUNDS ?? 5)
const DURATION = Number(process.env.DURATION ?? 2)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 32)
const RATE = Number(process.env.RATE ?? 1000)
const AUTOCANNON = fileURLToPath(new URL('../../node_modules/autocannon/autocannon.js', import.meta.url))
const BASE_CLI = process.env.LEAKY_BASE_CLI ?? '/work/main/dist/cli/main.js'
const wrk = which('wrk', process.env.WRK)
if (wrk === null) {
  console.error('wrk not found: apt-get install wrk')
  process.exit(1)
}
const taskset = which('taskset', process.env.TASKSET)
const cpus = allowedCpus()
const [loadCpus, serverCpus] = taskset !== null && cpus !== null && cpus.length >= 2 ? [String(cpus[0]), String(cpus[1])] : [null, null]
const dir = mkdtempSync(join(tmpdir(), 'leaky-tracing-bench-'))

let exports = 0
let exportBytes = 0
const sink = http.createServer((req, res) => {
  req.on('data', (d) => (exportBytes += d.length))
  req.on('end', () => {
    exports++
    res.writeHead(200, { 'content-type': 'application/x-protobuf' })
    res.end()
  })
})
await new Promise((r) => sink.listen(0, '127.0.0.1', r))
const sinkUrl = `http://127.0.0.1:${sink.address().port}`

/** RATE req/s for DURATION s through autocannon's CLI, pinned like wrk; { requests, rps, non2xx, errors }. */
function fixedRate(url, scenario) {
  const args = [AUTOCANNON, '-j', '-c', String(CONNECTIONS), '-d', String(DURATION), '-R', String(RATE), '-m', scenario.method, '-b', scenario.body]
  for (const [k, v] of Object.entries(scenario.headers)) args.push('-H', `${k}=${v}`)
  args.push(url)
  const argv = taskset !== null && loadCpus !== null ? [taskset, ['-c', loadCpus, process.execPath, ...args]] : [process.execPath, args]
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv[1], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`autocannon exited ${code}`))
      const j = JSON.parse(out)
      resolve({ requests: j.requests.total, rps: j.requests.total / DURATION, non2xx: j.non2xx, errors: j.errors + j.timeouts })
    })
  })
}

try {
  const stub = await startStub({ taskset, cpus: loadCpus })
  const target = `["http://127.0.0.1:${stub.port}"]`
  const config = (tracing) => `listen: 127.0.0.1:0
workers: 1
log: { level: info, access: false }
admin: { listen: 127.0.0.1:0 }
${tracing}
limits:
  ip-rps: { per: ip, requests: 1M/s }
upstreams:
  llm: { provider: openai, targets: ${target}, pool: { connections: ${CONNECTIONS} } }
routes:
  - { path: /v1/, upstream: llm, limits: [ip-rps] }
`
  const variants = {}
  if (existsSync(BASE_CLI) && BASE_CLI !== CLI) variants.today = { cli: BASE_CLI, tracing: '' }
  variants.off = { cli: CLI, tracing: '' }
  variants['1%'] = { cli: CLI, tracing: `tracing: { endpoint: "${sinkUrl}", sample: 0.01 }` }
  variants['100%'] = { cli: CLI, tracing: `tracing: { endpoint: "${sinkUrl}", sample: 1, max_queue: 8192 }` }
  const procs = {}
  for (const [name, v] of Object.entries(variants)) {
    const file = join(dir, `${name.replace('%', 'pct')}.yaml`)
    writeFileSync(file, config(v.tracing))
    const proc = start(process.execPath, [v.cli, 'start', '-c', file], { taskset, cpus: serverCpus, cwd: dir })
    const ready = await waitForJson(proc, (x) => x.msg === 'ready')
    procs[name] = { proc, port: ready.port, adminPort: ready.admin_port, cpu: 0, req: 0, ratios: [] }
  }
  const scenario = SCENARIOS.chat
  const script = wrkScript(dir, 'chat', scenario)
  console.log(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  for (const p of Object.values(procs)) {
    await wrkRun({ bin: wrk, url: `http://127.0.0.1:${p.port}`, scenario, script, connections: CONNECTIONS, threads: 1, seconds: 1, taskset, cpus: loadCpus })
  }
  for (let r = 1; r <= ROUNDS; r++) {
    // alternate the order each round: whatever drifts during a round weighs on every variant alike
    const names = Object.keys(procs)
    if (r % 2 === 0) names.reverse()
    const round = {}
    for (const name of names) {
      const p = procs[name]
      const url = `http://127.0.0.1:${p.port}`
      const c0 = cpuSeconds(p.proc.pid)
      const res = RATE > 0 ? await fixedRate(url + scenario.path, scenario)
        : await wrkRun({ bin: wrk, url, scenario, script, connections: CONNECTIONS, threads: 1, seconds: DURATION, taskset, cpus: loadCpus })
      // spans still queued leave with the next batch (512 spans) or within a second: the next round pays for what
      // this one left, alike for every round
      await new Promise((r) => setTimeout(r, 300))
      const cpu = cpuSeconds(p.proc.pid) - c0
      if (res.non2xx > 0 || res.errors > 0) throw new Error(`${name}: ${res.non2xx} non-2xx, ${res.errors} socket errors`)
      p.cpu += cpu
      p.req += res.requests
      round[name] = (cpu / res.requests) * 1e6
      console.log(`round ${r} ${name.padEnd(6)} ${res.rps.toFixed(0).padStart(6)} req/s  ${round[name].toFixed(1)} µs CPU/req`)
    }
    for (const name of names) procs[name].ratios.push(round[name] / round.off)
  }
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}; OTLP exports received: ${exports} (${(exportBytes / 1024).toFixed(0)} KiB)`)
  const per = (p) => (p.cpu / p.req) * 1e6
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b)
    return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
  }
  const line = Object.entries(procs).map(([n, p]) => `${n} ${per(p).toFixed(1)} µs, median ratio ${median(p.ratios).toFixed(3)}× [${Math.min(...p.ratios).toFixed(2)}–${Math.max(...p.ratios).toFixed(2)}]`).join('; ')
  console.log(`\n1 KB chat POST, proxy CPU/request (all rounds) and per-round ratio to tracing off: ${line} (goals: off ≈ today, 1 % ≤ 1.03×)`)
  for (const p of Object.values(procs)) await stop(p.proc)
  await stop(stub.proc)
} finally {
  await stopAll()
  sink.close()
  rmSync(dir, { recursive: true, force: true })
}
