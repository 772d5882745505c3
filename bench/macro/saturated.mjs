#!/usr/bin/env node
// Issue 16's honest rig: the proxy under test SATURATED on one core, side by side with nginx on the same core, so
// the figures are the proxy's own cost and not the client's or the upstream's.
//
//   CPU 1: the server under test — leaky (`workers: 1`) or nginx (`worker_processes 1`, upstream keep-alive), one at
//          a time, interleaved per round;
//   CPU 0: wrk (-t1) and the upstream, a single-threaded uWS server written below that answers from memory
//          (a 15-byte health JSON, a 367-byte chat completion with usage, or 200 SSE events each in its own write):
//          cheap enough that CPU 1 is the bottleneck (the run prints CPU 1's busy share to show it).
//
// Cases (CPU µs/request of the server process from /proc, req/s, p50; median over rounds):
//   get        GET /__stub/health through a provider: none route (plain proxying)
//   chat       1 KB chat POST through the OpenAI route with key auth, 2 request limits, 1 token limit, metering and
//              the access log
//   chat-bytes the chat case on an upstream with `prompt_estimate: bytes` (no BPE on the request path)
//   chat-bare  the same POST through the same OpenAI upstream without auth or limits (what they cost: the ratio)
//   chat-plain the same POST through a provider: none route: no auth, limits, estimate or usage metering
//   sse        a stream of 200 events, each in its own upstream write (CPU per request and per event)
//   lat1       one connection, small GET: added p50 latency over the upstream direct
//   footprint  the sidecar's footprint: the server's CPU (share of one core) and RSS at a fixed offered rate
//              (RATE, default 5000 req/s, autocannon -R on CPU 0) for get and chat, leaky and nginx
// nginx runs get, chat (its closest: plain proxying) and sse. The ratios are the issue's targets.
//
//   node bench/macro/saturated.mjs            (ROUNDS=3 DURATION=4 CONNECTIONS=64; needs wrk, taskset; nginx when on PATH)
//   RECORD=1 ... writes bench/results/saturated-<date>.json
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI, cliBuilt } from './leaky.mjs'
import { run, start, waitForJson, stop, stopAll, which } from './procs.mjs'
import { cpuSeconds } from './cpu.mjs'
import { wrkRun, wrkScript } from './wrk.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { allowedCpus, machine } from './machine.mjs'
import { nginxVersion, startNginx } from './nginx.mjs'
import { writeResults } from '../record.mjs'
import { CHAT_KEY, saturatedConfig, startUwsUpstream } from './ab.mjs'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const AUTOCANNON = createRequire(import.meta.url).resolve('autocannon/autocannon.js')

/** Resident set (kB) of a process and its descendants (leaky's master, its generation and the worker threads in it;
 * nginx's master and worker), from /proc; shared pages count once per process, as `ps` shows them. */
function rssKb(pid) {
  const status = (p) => {
    try {
      return readFileSync(`/proc/${p}/status`, 'utf8')
    } catch {
      return ''
    }
  }
  const field = (text, name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN)
  const kids = new Map()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    const ppid = field(status(d), 'PPid')
    if (!kids.has(ppid)) kids.set(ppid, [])
    kids.get(ppid).push(Number(d))
  }
  let total = 0
  const walk = (p) => {
    const v = field(status(p), 'VmRSS')
    if (!Number.isNaN(v)) total += v
    for (const c of kids.get(p) ?? []) walk(c)
  }
  walk(pid)
  return total
}

const num = (name, def) => Number(process.env[name] ?? def)
const ROUNDS = num('ROUNDS', 3)
const DURATION = num('DURATION', 4)
const CONNECTIONS = num('CONNECTIONS', 64)
const EVENTS = 200
const RATE = num('RATE', 5000)
if (!cliBuilt()) {
  console.error(`${CLI} is missing: run \`npm run build\` first`)
  process.exit(1)
}
const wrk = which('wrk', process.env.WRK)
const taskset = which('taskset', process.env.TASKSET)
const cpus = allowedCpus()
if (wrk === null || taskset === null || cpus === null || cpus.length < 2) {
  console.error('needs wrk, taskset and two CPUs (apt-get install wrk util-linux)')
  process.exit(1)
}
const [loadCpu, serverCpu] = [String(cpus[0]), String(cpus[1])]
const nginxBin = process.env.NGINX === 'none' ? null : which('nginx', process.env.NGINX)
const uwsPackage = process.env.LEAKY_UWS ?? 'uWebSockets.js'

const dir = mkdtempSync(join(tmpdir(), 'leaky-saturated-'))
try {
  const { proc: upstream, port: upPort } = await startUwsUpstream({ dir, load: { taskset, cpus: loadCpu } }, { events: EVENTS, uwsPackage })
  const up = { port: upPort }
  const file = join(dir, 'leaky.yaml')
  // chat-bytes: the chat POST on an upstream whose pre-charge bounds the prompt by its bytes (prompt_estimate: bytes)
  writeFileSync(file, saturatedConfig(up.port, CONNECTIONS, {
    upstreams: `  openai-bytes: { provider: openai, prompt_estimate: bytes, targets: ["http://127.0.0.1:${up.port}"], pool: { connections: ${CONNECTIONS} } }\n`,
    routes: '  - { path: /fast/, upstream: openai-bytes, strip_prefix: true, auth: key, limits: [key-rps, org-rpm, key-tpm] }\n',
  }))
  const proxy = start(process.execPath, [CLI, 'start', '-c', file], { taskset, cpus: serverCpu, cwd: dir })
  const ready = await waitForJson(proxy, (v) => v.msg === 'ready')
  let nginx = null
  if (nginxBin !== null) nginx = await startNginx({ bin: nginxBin, dir: join(dir, 'nginx'), upstreamPort: up.port, workers: 1, keepalive: CONNECTIONS, taskset, cpus: serverCpu })

  const auth = { ...SCENARIOS.chat.headers, authorization: `Bearer ${CHAT_KEY}` }
  const scen = {
    get: SCENARIOS.get,
    chat: { ...SCENARIOS.chat, headers: auth },
    'chat-bytes': { ...SCENARIOS.chat, headers: auth, path: '/fast/v1/chat/completions' },
    'chat-bare': { ...SCENARIOS.chat, path: '/bare/v1/chat/completions' },
    'chat-plain': { ...SCENARIOS.chat, path: '/plain/v1/chat/completions' },
    sse: { ...SCENARIOS.sse, headers: auth },
  }
  const scripts = Object.fromEntries(Object.entries(scen).map(([k, s]) => [k, wrkScript(dir, k, s)]))
  const nginxChatScript = wrkScript(dir, 'chat-nginx', SCENARIOS.chat)
  const leaky = `http://127.0.0.1:${ready.port}`
  const cases = [
    ['get', 'leaky', leaky, proxy.pid], ['chat', 'leaky', leaky, proxy.pid], ['chat-bytes', 'leaky', leaky, proxy.pid], ['chat-bare', 'leaky', leaky, proxy.pid], ['chat-plain', 'leaky', leaky, proxy.pid], ['sse', 'leaky', leaky, proxy.pid],
  ]
  if (nginx !== null) {
    const n = `http://127.0.0.1:${nginx.port}`
    // nginx's chat is plain proxying of the same POST: it knows no keys, limits or tokens
    cases.push(['get', 'nginx', n, nginx.proc.pid], ['chat', 'nginx', n, nginx.proc.pid], ['sse', 'nginx', n, nginx.proc.pid])
  }
  const runCase = async ([name, , url, pid], seconds, connections = CONNECTIONS) => {
    // nginx knows no keys: its chat is the same POST without the Authorization header
    const nginxChat = name === 'chat' && url !== leaky
    const scenario = nginxChat ? SCENARIOS.chat : scen[name]
    const script = nginxChat ? nginxChatScript : scripts[name]
    const c0 = cpuSeconds(pid)
    const res = await wrkRun({ bin: wrk, url, scenario, script, connections, threads: 1, seconds, taskset, cpus: loadCpu })
    const cpu = cpuSeconds(pid) - c0
    if (res.non2xx > 0 || res.errors > 0) throw new Error(`${name} via ${url}: ${res.non2xx} non-2xx, ${res.errors} socket errors`)
    return { ...res, cpu_us: (cpu / res.requests) * 1e6, busy: cpu / res.seconds }
  }
  console.log(`saturated rig: server on CPU ${serverCpu} (leaky workers: 1${nginx !== null ? ', nginx worker_processes 1' : ''}); ` +
    `wrk -t1 -c${CONNECTIONS} and the uWS upstream on CPU ${loadCpu}; ${ROUNDS} rounds × ${DURATION} s, interleaved`)
  for (const c of cases) await runCase(c, 1)
  const rows = []
  for (let r = 1; r <= ROUNDS; r++) {
    const order = r % 2 === 1 ? cases : [...cases].reverse()
    for (const c of order) {
      const res = await runCase(c, DURATION)
      rows.push({ round: r, case: c[0], target: c[1], rps: res.rps, p50_ms: res.p50, p99_ms: res.p99, cpu_us_per_req: res.cpu_us, server_busy: res.busy })
      console.log(`round ${r} ${c[1].padEnd(5)} ${c[0].padEnd(9)} ${res.rps.toFixed(0).padStart(7)} req/s  p50 ${res.p50.toFixed(2)} ms  ` +
        `${res.cpu_us.toFixed(1).padStart(6)} µs CPU/req  server core ${(res.busy * 100).toFixed(0)} % busy`)
    }
  }
  // one connection: the latency a request gains by passing through the proxy (upstream direct vs proxy)
  const lat = {}
  for (const [name, url] of [['direct', `http://127.0.0.1:${up.port}`], ['leaky', leaky]]) {
    const res = await wrkRun({ bin: wrk, url, scenario: SCENARIOS.get, script: null, connections: 1, threads: 1, seconds: DURATION, taskset, cpus: loadCpu })
    lat[name] = res.p50
  }
  // the same offered rate to each server: what a sidecar costs at a given load, not at saturation. autocannon paces
  // the requests (-R) over 16 connections from CPU 0; the server's CPU over the run ÷ its length = cores busy
  const footprint = []
  for (const [name, target, url, pid] of cases.filter((c) => c[0] === 'get' || c[0] === 'chat')) {
    const s = name === 'chat' && url !== leaky ? SCENARIOS.chat : scen[name]
    const args = [AUTOCANNON, '-j', '-R', String(RATE), '-c', '16', '-d', String(DURATION), '-m', s.method]
    for (const [k, v] of Object.entries(s.headers)) args.push('-H', `${k}=${v}`)
    if (s.body !== null) args.push('-b', s.body)
    args.push(url + s.path)
    const c0 = cpuSeconds(pid)
    const t0 = performance.now()
    const out = await run(process.execPath, args, { taskset, cpus: loadCpu })
    const wall = (performance.now() - t0) / 1000
    const cpu = cpuSeconds(pid) - c0
    const r = JSON.parse(out.stdout)
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`footprint ${name} via ${url}: ${r.non2xx} non-2xx, ${r.errors} errors`)
    const row = { case: name, target, offered_rps: RATE, rps: r.requests.total / r.duration, cores: cpu / wall, rss_mb: rssKb(pid) / 1024 }
    footprint.push(row)
    console.log(`footprint ${target.padEnd(5)} ${name.padEnd(4)} at ${RATE}/s offered: ${row.rps.toFixed(0)} req/s, ` +
      `${(row.cores * 100).toFixed(1)} % of one core, RSS ${row.rss_mb.toFixed(0)} MB`)
  }
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b)
    return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
  }
  const med = (name, target, key) => median(rows.filter((x) => x.case === name && x.target === target).map((x) => x[key]))
  const result = {}
  for (const [name, target] of cases.map((c) => [c[0], c[1]])) {
    result[`${target}_${name}`] = { rps: med(name, target, 'rps'), cpu_us_per_req: med(name, target, 'cpu_us_per_req'), busy: med(name, target, 'server_busy') }
  }
  result.sse_cpu_us_per_event = result.leaky_sse.cpu_us_per_req / EVENTS
  result.limits_ratio = result.leaky_chat.cpu_us_per_req / result['leaky_chat-bare'].cpu_us_per_req
  result.limits_accounting_ratio = result.leaky_chat.cpu_us_per_req / result['leaky_chat-plain'].cpu_us_per_req
  result.limits_accounting_ratio_bytes = result['leaky_chat-bytes'].cpu_us_per_req / result['leaky_chat-plain'].cpu_us_per_req
  if (result.nginx_chat !== undefined) result.ratio_chat_bytes = result['leaky_chat-bytes'].cpu_us_per_req / result.nginx_chat.cpu_us_per_req
  result.added_p50_ms = lat.leaky - lat.direct
  const targets = [['get', 3.0], ['chat', 4.0], ['sse', 1.5]]
  console.log('\nmedian CPU µs/request (req/s):')
  for (const [name] of targets.concat([['chat-bytes'], ['chat-bare'], ['chat-plain']])) {
    const l = result[`leaky_${name}`]
    const n = result[`nginx_${name}`]
    console.log(`  ${name.padEnd(9)} leaky ${l.cpu_us_per_req.toFixed(1)} µs (${l.rps.toFixed(0)}/s)` +
      (n !== undefined ? `  nginx ${n.cpu_us_per_req.toFixed(1)} µs (${n.rps.toFixed(0)}/s)  ratio ${(l.cpu_us_per_req / n.cpu_us_per_req).toFixed(2)}×` : ''))
  }
  if (nginx !== null) for (const [name] of targets) result[`ratio_${name}`] = result[`leaky_${name}`].cpu_us_per_req / result[`nginx_${name}`].cpu_us_per_req
  console.log(`  auth + limits: chat ÷ chat-bare ${result.limits_ratio.toFixed(2)}×; auth + limits + estimate + accounting: chat ÷ chat-plain ${result.limits_accounting_ratio.toFixed(2)}× (goal ≤ 1.15×)`)
  console.log(`  with prompt_estimate: bytes: chat-bytes ÷ chat-plain ${result.limits_accounting_ratio_bytes.toFixed(2)}×` +
    (result.ratio_chat_bytes !== undefined ? `, ÷ nginx ${result.ratio_chat_bytes.toFixed(2)}×` : ''))
  console.log(`  SSE: ${result.sse_cpu_us_per_event.toFixed(2)} µs per event`)
  console.log(`  added p50 at 1 connection: ${(result.added_p50_ms * 1000).toFixed(0)} µs (goal ≤ 100 µs)`)
  if (nginx !== null) for (const [name, goal] of targets) console.log(`  ${name} ÷ nginx ${result[`ratio_${name}`].toFixed(2)}× (goal ≤ ${goal}×)`)
  writeResults(`saturated-${new Date().toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`, {
    version: 1,
    date: new Date().toISOString(),
    command: 'node bench/macro/saturated.mjs',
    machine: machine(),
    settings: { rounds: ROUNDS, duration_s: DURATION, connections: CONNECTIONS, events: EVENTS, load_cpu: loadCpu, server_cpu: serverCpu,
      nginx: nginxBin === null ? null : await nginxVersion(nginxBin) },
    rounds: rows,
    latency_1conn_p50_ms: lat,
    footprint,
    result,
  })
  await stop(proxy)
  if (nginx !== null) await stop(nginx.proc)
  await stop(upstream)
} finally {
  await stopAll()
  rmSync(dir, { recursive: true, force: true })
}
