// Issue-4 measurement: proxy CPU per request for the same 1 KB chat POST through a route with key auth, two
// request limits, one token limit and usage accounting, against the same request through a plain route
// (provider: none, no auth, no limits), one proxy, interleaved rounds, same run. Prints the ratio (goal ≤ 1.15×).
//   node bench/macro/limits-overhead.mjs            (ROUNDS=3 DURATION=4 CONNECTIONS=64; needs wrk)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI, startStub } from './leaky.mjs'
import { start, waitForJson, stop, stopAll, which } from './procs.mjs'
import { cpuSeconds } from './cpu.mjs'
import { wrkRun, wrkScript } from './wrk.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { allowedCpus } from './machine.mjs'

const ROUNDS = Number(process.env.ROUNDS ?? 3)
const DURATION = Number(process.env.DURATION ?? 4)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 64)
const wrk = which('wrk', process.env.WRK)
if (wrk === null) {
  console.error('wrk not found: apt-get install wrk')
  process.exit(1)
}
const taskset = which('taskset', process.env.TASKSET)
const cpus = allowedCpus()
const [loadCpus, serverCpus] = taskset !== null && cpus !== null && cpus.length >= 2 ? [String(cpus[0]), String(cpus[1])] : [null, null]
const dir = mkdtempSync(join(tmpdir(), 'leaky-limits-bench-'))
try {
  const stub = await startStub({ taskset, cpus: loadCpus })
  const target = `["http://127.0.0.1:${stub.port}"]`
  const file = join(dir, 'leaky.yaml')
  // limits far above what the bench reaches: every request pays for the full decision, none is denied
  writeFileSync(file, `listen: 127.0.0.1:0
workers: 1
log: { level: info, access: false }
admin: { listen: 127.0.0.1:0 }
limits:
  key-rps: { per: key, requests: 1M/s }
  key-rpm: { per: key, requests: 60M/min }
  key-tpm: { per: key, tokens: 10000M/min }
keys:
  - { id: bench, key: sk-bench }
upstreams:
  llm: { provider: openai, targets: ${target}, pool: { connections: ${CONNECTIONS} } }
  plain: { provider: none, targets: ${target}, pool: { connections: ${CONNECTIONS} } }
routes:
  - { path: /v1/, upstream: llm, auth: key, limits: [key-rps, key-rpm, key-tpm] }
  - { path: /plain/, upstream: plain, strip_prefix: true }
`)
  const proxy = start(process.execPath, [CLI, 'start', '-c', file], { taskset, cpus: serverCpus, cwd: dir })
  const ready = await waitForJson(proxy, (v) => v.msg === 'ready')
  const base = SCENARIOS.chat
  const cases = {
    limited: { ...base, headers: { ...base.headers, authorization: 'Bearer sk-bench' } },
    plain: { ...base, path: '/plain' + base.path },
  }
  const totals = { limited: { cpu: 0, req: 0 }, plain: { cpu: 0, req: 0 } }
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [name, scenario] of Object.entries(cases)) {
      const script = wrkScript(dir, name, scenario)
      await wrkRun({ bin: wrk, url: `http://127.0.0.1:${ready.port}`, scenario, script, connections: CONNECTIONS, threads: 1, seconds: 1, taskset, cpus: loadCpus })
      const c0 = cpuSeconds(proxy.pid)
      const res = await wrkRun({ bin: wrk, url: `http://127.0.0.1:${ready.port}`, scenario, script, connections: CONNECTIONS, threads: 1, seconds: DURATION, taskset, cpus: loadCpus })
      const cpu = cpuSeconds(proxy.pid) - c0
      if (res.non2xx > 0 || res.errors > 0) throw new Error(`${name}: ${res.non2xx} non-2xx, ${res.errors} socket errors`)
      totals[name].cpu += cpu
      totals[name].req += res.requests
      console.log(`round ${r} ${name.padEnd(7)} ${res.rps.toFixed(0).padStart(6)} req/s  ${((cpu / res.requests) * 1e6).toFixed(1)} µs CPU/req`)
    }
  }
  const per = (t) => (t.cpu / t.req) * 1e6
  const lim = per(totals.limited)
  const pl = per(totals.plain)
  console.log(`\n1 KB chat POST, proxy CPU/request: key auth + 2 request limits + 1 token limit + usage accounting ${lim.toFixed(1)} µs vs plain ${pl.toFixed(1)} µs = ${(lim / pl).toFixed(2)}× (goal ≤ 1.15×)`)
  await stop(proxy)
  await stop(stub.proc)
} finally {
  await stopAll()
  rmSync(dir, { recursive: true, force: true })
}
