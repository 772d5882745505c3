#!/usr/bin/env node
// What decoding a compressed answer costs: proxy CPU per request for the '1 KB chat POST' (scenarios.mjs) through
// the OpenAI route when the upstream gzips its answer anyway (a CDN in front, a server that ignores the proxy's
// `Accept-Encoding: identity`) against the same answer uncompressed. One proxy, one upstream process with two
// ports (identity, gzip) serving the same ~0.7 KB chat.completion bytes, rounds interleaved, same run.
//   node bench/macro/compressed.mjs      (ROUNDS=3 DURATION=4 WARMUP=1 CONNECTIONS=32; wrk when on PATH, else autocannon)
// Client and upstream on the first allowed CPU, the proxy (1 worker) on the second (taskset). Writes
// compressed-<date>.json where bench results go (bench/record.mjs).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { CLI, cliBuilt } from './leaky.mjs'
import { run, start, waitForJson, stop, stopAll, which } from './procs.mjs'
import { cpuSeconds, machineBusySeconds, selfSeconds } from './cpu.mjs'
import { autocannonRun } from './autocannon.mjs'
import { wrkRun, wrkScript } from './wrk.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { allowedCpus, machine } from './machine.mjs'
import { writeResults } from '../record.mjs'

const num = (name, def) => Number(process.env[name] ?? def)
const ROUNDS = num('ROUNDS', 3)
const DURATION = num('DURATION', 4)
const WARMUP = num('WARMUP', 1)
const CONNECTIONS = num('CONNECTIONS', 32)
if (!cliBuilt()) {
  console.error(`${CLI} is missing: run \`npm run build\` first`)
  process.exit(1)
}
const wrk = which('wrk', process.env.WRK)
const taskset = which('taskset', process.env.TASKSET)
const host = machine()
const cpus = allowedCpus()
const [loadCpus, serverCpus] = taskset !== null && cpus !== null && cpus.length >= 2 ? [String(cpus[0]), String(cpus[1])] : [null, null]
if (loadCpus !== null) {
  // autocannon runs in this process: all its threads on the load core with the upstream
  const r = await run(taskset, ['-a', '-p', '-c', loadCpus, String(process.pid)])
  if (r.code !== 0) throw new Error(`taskset: ${r.stderr}`)
}

// The upstream: an answer shaped like the stub's for this request (max_tokens 16), gzipped once at start — the
// proxy's decoding is what is measured, not the upstream's compressing. Same bytes on both ports.
const UPSTREAM = `
import http from 'node:http'
import { gzipSync } from 'node:zlib'
const plain = Buffer.from(JSON.stringify({
  id: 'chatcmpl-bench', object: 'chat.completion', created: 1700000000, model: 'gpt-4o-mini-2024-07-18',
  choices: [{ index: 0, message: { role: 'assistant', content: 'A leaky bucket drains at a steady pace, so bursts wait their turn and the average rate holds.', refusal: null }, logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 231, completion_tokens: 16, total_tokens: 247, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 } },
  service_tier: 'default', system_fingerprint: 'fp_bench',
}))
const gz = gzipSync(plain)
const ports = []
for (const gzip of [false, true]) {
  const body = gzip ? gz : plain
  const head = { 'content-type': 'application/json', 'content-length': String(body.length) }
  if (gzip) head['content-encoding'] = 'gzip'
  const s = http.createServer({ keepAliveTimeout: 60000 }, (req, res) => {
    req.resume()
    req.on('end', () => { res.writeHead(200, head); res.end(body) })
  })
  await new Promise((r) => s.listen(0, '127.0.0.1', r))
  ports.push(s.address().port)
}
console.log(JSON.stringify({ msg: 'listening', identity: ports[0], gzip: ports[1], plain_bytes: plain.length, gzip_bytes: gz.length }))
`

const dir = mkdtempSync(join(tmpdir(), 'leaky-compressed-bench-'))
try {
  const upstreamFile = join(dir, 'upstream.mjs')
  writeFileSync(upstreamFile, UPSTREAM)
  const upstream = start(process.execPath, [upstreamFile], { taskset, cpus: loadCpus })
  const up = await waitForJson(upstream, (v) => v.msg === 'listening')
  const file = join(dir, 'leaky.yaml')
  // as bench/macro/leaky.mjs: a request and a token limit far above what the bench reaches, access lines off
  writeFileSync(file, `listen: 127.0.0.1:0
workers: 1
log: { level: info, access: false }
admin: { listen: 127.0.0.1:0 }
limits:
  bench-rps: { per: ip, requests: 1M/s }
  bench-tpm: { per: ip, tokens: 10000M/min }
upstreams:
  identity: { provider: openai, targets: ["http://127.0.0.1:${up.identity}"], pool: { connections: ${CONNECTIONS} } }
  gzip: { provider: openai, targets: ["http://127.0.0.1:${up.gzip}"], pool: { connections: ${CONNECTIONS} } }
routes:
  - { path: /v1/, upstream: identity, limits: [bench-rps, bench-tpm] }
  - { path: /gz/, upstream: gzip, strip_prefix: true, limits: [bench-rps, bench-tpm] }
`)
  const proxy = start(process.execPath, [CLI, 'start', '-c', file], { taskset, cpus: serverCpus, cwd: dir })
  const ready = await waitForJson(proxy, (v) => v.msg === 'ready')
  const base = SCENARIOS.chat
  const cases = { identity: base, gzip: { ...base, path: '/gz' + base.path } }

  // both answer the same bytes, the gzip one decoded by the proxy: a misconfigured bench must fail, not report
  const a = await once(ready.port, cases.identity)
  const b = await once(ready.port, cases.gzip)
  if (a.status !== 200 || b.status !== 200 || a.encoding !== undefined || b.encoding !== undefined || !a.body.equals(b.body)) {
    throw new Error(`check failed: identity ${a.status} ${a.encoding}, gzip ${b.status} ${b.encoding}, same body: ${a.body.equals(b.body)}`)
  }
  const tool = wrk !== null ? 'wrk' : 'autocannon'
  const scripts = { identity: wrk === null ? null : wrkScript(dir, 'identity', cases.identity), gzip: wrk === null ? null : wrkScript(dir, 'gzip', cases.gzip) }
  const load = (name, seconds) => {
    const url = `http://127.0.0.1:${ready.port}`
    return wrk !== null
      ? wrkRun({ bin: wrk, url, scenario: cases[name], script: scripts[name], connections: CONNECTIONS, threads: 1, seconds, taskset, cpus: loadCpus })
      : autocannonRun({ url, scenario: cases[name], connections: CONNECTIONS, seconds })
  }
  console.log(`compressed answers: 1 KB chat POST, ${up.plain_bytes}-byte answer (${up.gzip_bytes} gzipped); ${tool}, ${CONNECTIONS} connections, ` +
    `${ROUNDS} rounds × ${WARMUP} s warm-up + ${DURATION} s per case; client+upstream on CPU ${loadCpus ?? 'any'}, proxy on CPU ${serverCpus ?? 'any'}`)
  const totals = { identity: { cpu: 0, req: 0 }, gzip: { cpu: 0, req: 0 } }
  const rounds = []
  // both paths JIT-compiled before anything is measured; then each round alternates which case goes first, so a
  // drift in what else the machine runs does not always land on the same case
  for (const name of Object.keys(cases)) await load(name, Math.max(WARMUP, 2))
  for (let r = 1; r <= ROUNDS; r++) {
    const order = r % 2 === 1 ? ['identity', 'gzip'] : ['gzip', 'identity']
    for (const name of order) {
      if (WARMUP > 0) await load(name, WARMUP)
      const c0 = cpuSeconds(proxy.pid)
      const m0 = machineBusySeconds()
      const s0 = selfSeconds()
      const u0 = cpuSeconds(upstream.pid)
      const t0 = performance.now()
      const res = await load(name, DURATION)
      const wall = (performance.now() - t0) / 1000
      const cpu = cpuSeconds(proxy.pid) - c0
      // CPU of the machine that neither the proxy, the upstream nor the client used: other programs
      const others = machineBusySeconds() - m0 - cpu - (cpuSeconds(upstream.pid) - u0) - (selfSeconds() - s0)
      if (res.non2xx > 0 || res.errors > 0) throw new Error(`${name}: ${res.non2xx} non-2xx, ${res.errors} socket errors`)
      totals[name].cpu += cpu
      totals[name].req += res.requests
      const row = { round: r, case: name, requests: res.requests, rps: res.rps, p50_ms: res.p50, p99_ms: res.p99, cpu_s: cpu, cpu_us_per_req: (cpu / res.requests) * 1e6, others_cpu_pct: Math.max(0, (others / wall) * 100) }
      rounds.push(row)
      console.log(`round ${r} ${name.padEnd(8)} ${res.rps.toFixed(0).padStart(6)} req/s  p50 ${res.p50.toFixed(2)} ms  ${row.cpu_us_per_req.toFixed(1)} µs CPU/req  others ${row.others_cpu_pct.toFixed(0)}%`)
    }
  }
  const per = (t) => (t.cpu / t.req) * 1e6
  const id = per(totals.identity)
  const gz = per(totals.gzip)
  console.log(`\n1 KB chat POST, proxy CPU/request: gzip upstream ${gz.toFixed(1)} µs vs identity upstream ${id.toFixed(1)} µs = ${(gz / id).toFixed(2)}× (+${(gz - id).toFixed(1)} µs per decoded answer)`)
  writeResults(`compressed-${new Date().toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`, {
    version: 1,
    date: new Date().toISOString(),
    command: 'node bench/macro/compressed.mjs',
    machine: host,
    settings: { rounds: ROUNDS, duration_s: DURATION, warmup_s: WARMUP, connections: CONNECTIONS, tool, proxy_workers: 1, load_cpus: loadCpus, server_cpus: serverCpus, answer_bytes: up.plain_bytes, answer_gzip_bytes: up.gzip_bytes },
    rounds,
    result: { identity_cpu_us_per_req: id, gzip_cpu_us_per_req: gz, ratio: gz / id },
  })
  await stop(proxy)
  await stop(upstream)
} finally {
  await stopAll()
  rmSync(dir, { recursive: true, force: true })
}

/** One request of `scenario` to the proxy: status, Content-Encoding, and the body (gunzipped when it says gzip). */
function once(port, scenario) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: scenario.method, path: scenario.path, headers: { ...scenario.headers, 'accept-encoding': 'gzip' } }, (res) => {
      const parts = []
      res.on('data', (d) => parts.push(d))
      res.on('end', () => {
        const raw = Buffer.concat(parts)
        const encoding = res.headers['content-encoding']
        resolve({ status: res.statusCode, encoding, body: encoding === 'gzip' ? gunzipSync(raw) : raw })
      })
    })
    req.on('error', reject)
    req.end(scenario.body)
  })
}
