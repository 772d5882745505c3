#!/usr/bin/env node
// `npm run bench`: the data plane's macro benchmark. Starts the stub upstream, the proxy and (when installed)
// nginx; drives each with autocannon and (when on PATH) wrk, interleaved per scenario; measures req/s, latency and
// the CPU each server spends per request (from /proc); prints one table and writes it as JSON (bench/record.mjs:
// <tmpdir>/leaky-bench/, or bench/results/ with RECORD=1).
// Knobs (env): DURATION WARMUP CONNECTIONS SCENARIOS TARGETS TOOL WORKERS WRK_THREADS LOAD_CPUS SERVER_CPUS
// NGINX WRK RECORD RESULTS PROXY_NODE_ARGS — see bench/README.md.
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { autocannonRun, version as autocannonVersion } from './autocannon.mjs'
import { hasProc, sample } from './cpu.mjs'
import { cliBuilt, CLI, startProxy, startStub } from './leaky.mjs'
import { allowedCpus, machine } from './machine.mjs'
import { nginxVersion, startNginx } from './nginx.mjs'
import { run, stopAll, which } from './procs.mjs'
import { Progress } from './progress.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { addRatios, mergeRounds } from './results.mjs'
import { writeResults } from '../record.mjs'
import { formatSummary, formatTable } from './table.mjs'
import { wrkRun, wrkScript, wrkVersion } from './wrk.mjs'

const env = process.env

function list(name, def, allowed) {
  const v = (env[name] ?? def).split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const x of v) if (!allowed.includes(x)) fail(`${name}: unknown "${x}" (expected ${allowed.join(', ')})`)
  return v
}

function posInt(name, def) {
  const v = Number(env[name] ?? def)
  if (!Number.isInteger(v) || v < 0) fail(`${name}: expected a whole number, got "${env[name]}"`)
  return v
}

function fail(message) {
  process.stderr.write(`bench: ${message}\n`)
  process.exit(1)
}

const DURATION = posInt('DURATION', 5)
const WARMUP = posInt('WARMUP', 1)
const CONNECTIONS = posInt('CONNECTIONS', 64)
const WORKERS = posInt('WORKERS', 1)
const WRK_THREADS = posInt('WRK_THREADS', 1)
const ROUNDS = posInt('ROUNDS', 1)
const SCENARIO_NAMES = list('SCENARIOS', 'get,chat,sse', Object.keys(SCENARIOS))
// COMPARE=path/to/other/dist/cli/main.js adds a second proxy build ("proxy-b"), measured in the same run
const COMPARE = env.COMPARE ?? null
const TARGETS = list('TARGETS', COMPARE === null ? 'direct,proxy,nginx' : 'direct,proxy,proxy-b,nginx', ['direct', 'proxy', 'proxy-b', 'nginx'])
if (TARGETS.includes('proxy-b') && COMPARE === null) fail('TARGETS has proxy-b: set COMPARE to the other build\'s dist/cli/main.js')
const TOOL = env.TOOL ?? 'both'
if (!['autocannon', 'wrk', 'both'].includes(TOOL)) fail(`TOOL: expected autocannon, wrk or both, got "${TOOL}"`)
if (DURATION < 1 || CONNECTIONS < 1 || WORKERS < 1 || ROUNDS < 1) fail('DURATION, CONNECTIONS, WORKERS and ROUNDS must be at least 1')
if (!cliBuilt()) fail(`${CLI} is missing: run \`npm run build\` first`)

const notes = []
const progress = new Progress()

// ── tools and pinning ────────────────────────────────────────────────────────────────────────────────────────────
const wrkBin = TOOL === 'autocannon' ? null : which('wrk', env.WRK)
const nginxBin = TARGETS.includes('nginx') && env.NGINX !== 'none' ? which('nginx', env.NGINX) : null
const tasksetBin = which('taskset', env.TASKSET)
if (TOOL !== 'autocannon' && wrkBin === null) notes.push('wrk not found on PATH: wrk rows skipped (apt-get install wrk)')
if (TOOL === 'wrk' && wrkBin === null) fail('TOOL=wrk but wrk is not on PATH')
if (TARGETS.includes('nginx') && nginxBin === null) notes.push('nginx not found: nginx rows and the ratios to nginx skipped (apt-get install nginx-light)')
if (!hasProc) notes.push('no /proc: CPU µs/request not measured')
const tools = (TOOL === 'both' ? ['autocannon', 'wrk'] : [TOOL]).filter((t) => t !== 'wrk' || wrkBin !== null)

// before pinning: afterwards this process sees only the load cores
const host = machine()
const cpus = allowedCpus()
let loadCpus = env.LOAD_CPUS ?? null
let serverCpus = env.SERVER_CPUS ?? null
if (tasksetBin === null) {
  notes.push('taskset not found: nothing pinned, client and servers share all cores')
  loadCpus = serverCpus = null
} else if (loadCpus === null && serverCpus === null) {
  if (cpus !== null && cpus.length >= 2) {
    loadCpus = String(cpus[0])
    serverCpus = String(cpus[1])
  } else {
    notes.push('fewer than 2 CPUs: nothing pinned')
  }
}
if (loadCpus !== null) {
  // every thread of this process (autocannon runs here), and whatever it starts unpinned, on the load cores
  const r = await run(tasksetBin, ['-a', '-p', '-c', loadCpus, String(process.pid)])
  if (r.code !== 0) fail(`taskset -a -p -c ${loadCpus} ${process.pid}: ${r.stderr.trim()}`)
}
const pin = (cpuList) => ({ taskset: cpuList === null ? null : tasksetBin, cpus: cpuList })

// ── servers ──────────────────────────────────────────────────────────────────────────────────────────────────────
const dir = mkdtempSync(join(tmpdir(), 'leaky-bench-'))
let cleaning = false
async function cleanup() {
  if (cleaning) return
  cleaning = true
  await stopAll()
  if (env.KEEP_TMP === undefined) rmSync(dir, { recursive: true, force: true })
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    progress.note(`\n${sig}: stopping the servers`)
    cleanup().then(() => process.exit(130))
  })
}

const results = {
  version: 1,
  date: new Date().toISOString(),
  command: 'npm run bench',
  machine: host,
  settings: {
    duration_s: DURATION,
    rounds: ROUNDS,
    warmup_s: WARMUP,
    connections: CONNECTIONS,
    pipelining: 1,
    proxy_workers: WORKERS,
    proxy_cli: CLI,
    // dist/ is whatever was last built, possibly from an uncommitted tree: when, tells which build was measured
    proxy_built: statSync(CLI).mtime.toISOString(),
    compare_cli: COMPARE,
    nginx_worker_processes: WORKERS,
    wrk_threads: WRK_THREADS,
    load_cpus: loadCpus,
    server_cpus: serverCpus,
    tools: { autocannon: autocannonVersion, wrk: wrkBin === null ? null : await wrkVersion(wrkBin) },
    nginx: nginxBin === null ? null : await nginxVersion(nginxBin),
  },
  scenarios: {},
  notes,
  runs: [],
  rounds: [],
}
for (const name of SCENARIO_NAMES) {
  const s = SCENARIOS[name]
  results.scenarios[name] = { title: s.title, about: s.about, method: s.method, path: s.path, body_bytes: s.body === null ? 0 : Buffer.byteLength(s.body) }
}

try {
  progress.note(`bench: ${SCENARIO_NAMES.join(', ')} × ${tools.join(', ')} × ${TARGETS.filter((t) => t !== 'nginx' || nginxBin !== null).join(', ')}; ` +
    `${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s each; client+stub on CPU ${loadCpus ?? 'any'}, servers on CPU ${serverCpus ?? 'any'}`)
  const stub = await startStub(pin(loadCpus))
  const servers = { direct: { pid: stub.proc.pid, port: stub.port } }
  const nodeArgs = env.PROXY_NODE_ARGS ? env.PROXY_NODE_ARGS.split(' ').filter((a) => a !== '') : []
  for (const [target, cli] of [['proxy', CLI], ['proxy-b', COMPARE]]) {
    if (!TARGETS.includes(target)) continue
    const p = await startProxy({ cli, dir: join(dir, target), upstreamPort: stub.port, workers: WORKERS, poolConnections: Math.max(64, CONNECTIONS), nodeArgs, ...pin(serverCpus) })
    servers[target] = { pid: p.proc.pid, port: p.port, proc: p.proc }
  }
  if (nginxBin !== null) {
    const n = await startNginx({ bin: nginxBin, dir, upstreamPort: stub.port, workers: WORKERS, keepalive: Math.max(64, CONNECTIONS), ...pin(serverCpus) })
    servers.nginx = { pid: n.proc.pid, port: n.port, proc: n.proc }
  }
  const targets = TARGETS.filter((t) => servers[t] !== undefined)
  await checkTargets(servers, targets)

  const steps = SCENARIO_NAMES.length * tools.length * ROUNDS * targets.length
  let step = 0
  for (const name of SCENARIO_NAMES) {
    const scenario = SCENARIOS[name]
    const script = wrkBin === null ? null : wrkScript(dir, name, scenario)
    for (const tool of tools) {
      for (let round = 1; round <= ROUNDS; round++) {
        for (const target of targets) {
          progress.begin(`[${++step}/${steps}] ${scenario.title} · ${tool} · ${target}${ROUNDS > 1 ? ` · round ${round}` : ''}`)
          const m = await measure({ name, scenario, script, tool, target, url: `http://127.0.0.1:${servers[target].port}`, pids: { target: servers[target].pid, stub: stub.proc.pid } })
          m.round = round
          results.rounds.push(m)
          progress.end(`${Math.round(m.rps)} req/s  p50 ${m.p50.toFixed(2)} ms  p99 ${m.p99.toFixed(2)} ms  ` +
            `${m.cpu_us_per_req.toFixed(1)} µs CPU/req  others ${m.others_cpu_pct.toFixed(0)}%` +
            `${m.errors + m.non2xx > 0 ? `  ${m.errors} errors, ${m.non2xx} non-2xx` : ''}`)
          for (const t of targets) {
            const proc = servers[t].proc
            if (proc?.exited) throw new Error(`${t} exited (${proc.code}) during the run: ${proc.stderr.trim()}`)
          }
        }
      }
    }
  }
} catch (err) {
  progress.note(`bench: ${err.message}`)
  await cleanup()
  process.exit(1)
}
await cleanup()

results.runs = mergeRounds(results.rounds)
addRatios(results)
if (results.runs.some((m) => m.others_cpu_pct > 20)) {
  notes.push('other programs used over 20% of a core during some runs (column "others %"): the machine was shared, compare within a row group only')
}
if (results.runs.some((m) => m.errors + m.non2xx > 0)) notes.push('some runs had errors or non-2xx answers (column "errors"): their numbers are suspect')
const table = formatTable(results)
const summary = formatSummary(results)
process.stdout.write(`\n${table}\n\n${summary}${summary === '' ? '' : '\n'}`)
for (const n of notes) process.stdout.write(`note: ${n}\n`)

writeResults(`${results.date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`, results)

/**
 * One row: a warm-up, then the measured window, with the CPU of the server (`pids.target`), the stub and this
 * process (the client, or wrk once reaped) sampled around it.
 */
async function measure({ name, scenario, script, tool, target, url, pids }) {
  const load = (seconds, withProgress) => tool === 'wrk'
    ? wrkRun({ bin: wrkBin, url, scenario, script, connections: CONNECTIONS, threads: WRK_THREADS, seconds, progress: withProgress ? progress : null, ...pin(loadCpus) })
    : autocannonRun({ url, scenario, connections: CONNECTIONS, seconds, progress: withProgress ? progress : null })
  if (WARMUP > 0) {
    progress.update('warm-up')
    await load(WARMUP, false)
  }
  const before = sample(pids)
  const t0 = performance.now()
  const r = await load(DURATION, true)
  const wall = (performance.now() - t0) / 1000
  const after = sample(pids)
  const used = (k) => after[k] - before[k]
  // CPU that neither the server, the stub nor the client used: other programs on this (shared) machine
  const others = used('machine') - used('target') - (target === 'direct' ? 0 : used('stub')) - used('client')
  return {
    scenario: name,
    tool,
    target,
    requests: r.requests,
    seconds: r.seconds,
    rps: r.rps,
    p50: r.p50,
    p99: r.p99,
    errors: r.errors,
    non2xx: r.non2xx,
    cpu_s: used('target'),
    cpu_us_per_req: (used('target') * 1e6) / r.requests,
    stub_cpu_us_per_req: (used('stub') * 1e6) / r.requests,
    client_cpu_us_per_req: (used('client') * 1e6) / r.requests,
    others_cpu_pct: Math.max(0, (others / wall) * 100),
  }
}

/** One request of every scenario to every target before measuring: a misrouted bench must fail, not report. */
async function checkTargets(servers, targets) {
  for (const name of SCENARIO_NAMES) {
    const s = SCENARIOS[name]
    for (const t of targets) {
      const { status, text } = await once(servers[t].port, s)
      if (status !== 200) throw new Error(`${t}: ${s.method} ${s.path} answered ${status}: ${text.slice(0, 200)}`)
      if (s.body?.includes('"stream":true') && !text.endsWith('data: [DONE]\n\n')) throw new Error(`${t}: the SSE stream did not end with [DONE]`)
    }
  }
}

/** One request on a connection of its own (agent: false), closed afterwards so no idle socket delays a drain. */
function once(port, s) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: s.path, method: s.method, headers: s.headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { text += c })
      res.on('end', () => resolve({ status: res.statusCode, text }))
    })
    req.on('error', reject)
    req.end(s.body ?? undefined)
  })
}
