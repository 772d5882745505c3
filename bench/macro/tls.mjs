#!/usr/bin/env node
// What TLS termination costs: proxy CPU per request for a small keep-alive GET over HTTPS (the proxy listener with
// tls:) against the same request over plain HTTP (listen_plain: on the same proxy, same worker), and the CPU per
// new TLS connection (one request per connection: a full handshake each). One proxy, one upstream, rounds
// interleaved, same run. Certificates: an EC P-256 test CA and server certificate made by openssl for the run.
//   node bench/macro/tls.mjs      (ROUNDS=3 DURATION=4 WARMUP=1 CONNECTIONS=32; needs wrk)
// nginx (`worker_processes 1`, upstream keep-alive, same certificate, TLS 1.2/1.3, no session cache) runs beside it
// when it is on PATH (apt-get install nginx): the same two HTTPS cases against it, same rounds, and the ratios.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI, cliBuilt } from './leaky.mjs'
import { run, start, waitForJson, stop, stopAll, which } from './procs.mjs'
import { cpuSeconds } from './cpu.mjs'
import { wrkRun } from './wrk.mjs'
import { allowedCpus, machine } from './machine.mjs'
import { writeResults } from '../record.mjs'
import { nginxVersion, startNginx } from './nginx.mjs'

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
if (wrk === null) {
  console.error('wrk is not on PATH (apt-get install wrk)')
  process.exit(1)
}
const nginxBin = process.env.NGINX === 'none' ? null : which('nginx', process.env.NGINX)
if (nginxBin === null) console.log('nginx is not installed (apt-get install nginx): no side-by-side comparison, the proxy over HTTPS vs over plain HTTP only')
const taskset = which('taskset', process.env.TASKSET)
const host = machine()
const cpus = allowedCpus()
const [loadCpus, serverCpus] = taskset !== null && cpus !== null && cpus.length >= 2 ? [String(cpus[0]), String(cpus[1])] : [null, null]

const UPSTREAM = `
import http from 'node:http'
const body = Buffer.from('{"status":"ok"}')
const s = http.createServer({ keepAliveTimeout: 60000 }, (req, res) => {
  req.resume()
  req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) }); res.end(body) })
})
await new Promise((r) => s.listen(0, '127.0.0.1', r))
console.log(JSON.stringify({ msg: 'listening', port: s.address().port }))
`

function openssl(dir, args) {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`)
}

const dir = mkdtempSync(join(tmpdir(), 'leaky-tls-bench-'))
try {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=bench CA'])
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'])
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext'])

  const upstreamFile = join(dir, 'upstream.mjs')
  writeFileSync(upstreamFile, UPSTREAM)
  const upstream = start(process.execPath, [upstreamFile], { taskset, cpus: loadCpus })
  const up = await waitForJson(upstream, (v) => v.msg === 'listening')
  const plainPort = await freePort()
  const file = join(dir, 'leaky.yaml')
  writeFileSync(file, `listen: 127.0.0.1:0
listen_plain: 127.0.0.1:${plainPort}
workers: 1
log: { level: info, access: false }
admin: { listen: 127.0.0.1:0 }
tls: { cert: ${join(dir, 'server.crt')}, key: ${join(dir, 'server.key')} }
upstreams:
  up: { targets: ["http://127.0.0.1:${up.port}"], pool: { connections: ${CONNECTIONS} } }
routes:
  - { path: /, upstream: up }
`)
  const proxy = start(process.execPath, [CLI, 'start', '-c', file], { taskset, cpus: serverCpus, cwd: dir })
  const ready = await waitForJson(proxy, (v) => v.msg === 'ready')
  const get = { method: 'GET', path: '/health', headers: {}, body: null }
  const close = join(dir, 'close.lua')
  writeFileSync(close, 'wrk.headers["Connection"] = "close"\n')
  const cases = {
    https: { url: `https://127.0.0.1:${ready.port}`, script: null, pid: proxy.pid },
    http: { url: `http://127.0.0.1:${plainPort}`, script: null, pid: proxy.pid },
    // uWS closes after the response when the client says Connection: close; wrk reconnects: a handshake a request
    'https-new-conn': { url: `https://127.0.0.1:${ready.port}`, script: close, pid: proxy.pid },
  }
  let nginx = null
  if (nginxBin !== null) {
    const ndir = join(dir, 'nginx')
    nginx = await startNginx({ bin: nginxBin, dir: ndir, upstreamPort: up.port, workers: 1, keepalive: Math.max(64, CONNECTIONS), taskset, cpus: serverCpus,
      tls: { cert: join(dir, 'server.crt'), key: join(dir, 'server.key') } })
    cases['nginx-https'] = { url: `https://127.0.0.1:${nginx.port}`, script: null, pid: nginx.proc.pid }
    cases['nginx-https-new-conn'] = { url: `https://127.0.0.1:${nginx.port}`, script: close, pid: nginx.proc.pid }
  }
  const load = (name, seconds) => wrkRun({ bin: wrk, url: cases[name].url, scenario: get, script: cases[name].script, connections: CONNECTIONS, threads: 1, seconds, taskset, cpus: loadCpus })
  console.log(`TLS termination: GET /health (15-byte answer); wrk, ${CONNECTIONS} connections, ${ROUNDS} rounds × ${WARMUP} s warm-up + ${DURATION} s per case; ` +
    `client+upstream on CPU ${loadCpus ?? 'any'}, proxy on CPU ${serverCpus ?? 'any'}`)
  const totals = Object.fromEntries(Object.keys(cases).map((k) => [k, { cpu: 0, req: 0 }]))
  const rounds = []
  for (const name of Object.keys(cases)) await load(name, Math.max(WARMUP, 2))
  for (let r = 1; r <= ROUNDS; r++) {
    const order = r % 2 === 1 ? Object.keys(cases) : Object.keys(cases).reverse()
    for (const name of order) {
      if (WARMUP > 0) await load(name, WARMUP)
      const pid = cases[name].pid
      const c0 = cpuSeconds(pid)
      const res = await load(name, DURATION)
      const cpu = cpuSeconds(pid) - c0
      if (res.non2xx > 0) throw new Error(`${name}: ${res.non2xx} non-2xx`)
      totals[name].cpu += cpu
      totals[name].req += res.requests
      totals[name].secs = (totals[name].secs ?? 0) + DURATION
      const row = { round: r, case: name, requests: res.requests, rps: res.rps, p50_ms: res.p50, p99_ms: res.p99, socket_errors: res.errors, cpu_s: cpu, cpu_us_per_req: (cpu / res.requests) * 1e6 }
      rounds.push(row)
      console.log(`round ${r} ${name.padEnd(14)} ${res.rps.toFixed(0).padStart(6)} req/s  p50 ${res.p50.toFixed(2)} ms  ${row.cpu_us_per_req.toFixed(1)} µs CPU/req`)
    }
  }
  const per = (t) => (t.cpu / t.req) * 1e6
  const rate = (t) => t.req / t.secs
  const result = {
    https_cpu_us_per_req: per(totals.https), http_cpu_us_per_req: per(totals.http), https_new_conn_cpu_us_per_req: per(totals['https-new-conn']),
    https_new_conn_per_s: rate(totals['https-new-conn']),
  }
  console.log(`\nproxy CPU/request: keep-alive HTTPS ${result.https_cpu_us_per_req.toFixed(1)} µs vs plain ${result.http_cpu_us_per_req.toFixed(1)} µs ` +
    `(+${(result.https_cpu_us_per_req - result.http_cpu_us_per_req).toFixed(1)} µs for TLS); a new TLS connection per request ${result.https_new_conn_cpu_us_per_req.toFixed(1)} µs ` +
    `(${result.https_new_conn_per_s.toFixed(0)} handshakes/s)`)
  if (nginx !== null) {
    Object.assign(result, {
      nginx_https_cpu_us_per_req: per(totals['nginx-https']), nginx_https_new_conn_cpu_us_per_req: per(totals['nginx-https-new-conn']),
      nginx_https_new_conn_per_s: rate(totals['nginx-https-new-conn']),
    })
    result.ratio_keepalive = result.https_cpu_us_per_req / result.nginx_https_cpu_us_per_req
    result.ratio_handshake = result.https_new_conn_cpu_us_per_req / result.nginx_https_new_conn_cpu_us_per_req
    console.log(`nginx CPU/request: keep-alive HTTPS ${result.nginx_https_cpu_us_per_req.toFixed(1)} µs (proxy ÷ nginx ${result.ratio_keepalive.toFixed(2)}×); ` +
      `a new TLS connection per request ${result.nginx_https_new_conn_cpu_us_per_req.toFixed(1)} µs (${result.nginx_https_new_conn_per_s.toFixed(0)} handshakes/s; ` +
      `proxy ÷ nginx ${result.ratio_handshake.toFixed(2)}×)`)
  }
  writeResults(`tls-${new Date().toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`, {
    version: 1,
    date: new Date().toISOString(),
    command: 'node bench/macro/tls.mjs',
    machine: host,
    settings: { rounds: ROUNDS, duration_s: DURATION, warmup_s: WARMUP, connections: CONNECTIONS, tool: 'wrk', proxy_workers: 1, load_cpus: loadCpus, server_cpus: serverCpus,
      nginx: nginxBin === null ? null : await nginxVersion(nginxBin), nginx_worker_processes: 1 },
    rounds,
    result,
  })
  await stop(proxy)
  if (nginx !== null) await stop(nginx.proc)
  await stop(upstream)
} finally {
  await stopAll()
  rmSync(dir, { recursive: true, force: true })
}

async function freePort() {
  const net = await import('node:net')
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
}
