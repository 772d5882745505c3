// Issue-15 measurement: proxy CPU per request for the same 1 KB chat POST (gpt-4o-mini, key auth, usage accounting
// and cost) through a route with two budgets (per key calendar month in Europe/Berlin, per org rolling day) against
// the same route without budgets, one proxy, interleaved rounds, same run. Prints the ratio (goal ≤ 1.05×).
//   node bench/macro/budgets-overhead.mjs            (ROUNDS=3 DURATION=4 CONNECTIONS=64; needs wrk)
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
const dir = mkdtempSync(join(tmpdir(), 'leaky-budgets-bench-'))
try {
  const stub = await startStub({ taskset, cpus: loadCpus })
  const target = `["http://127.0.0.1:${stub.port}"]`
  const file = join(dir, 'leaky.yaml')
  // budgets far above what the bench spends: every request pays for the full pre-charge and reconcile, none is denied
  writeFileSync(file, `listen: 127.0.0.1:0
workers: 1
log: { level: info, access: false }
admin: { listen: 127.0.0.1:0 }
budgets:
  key-month: { per: key, usd: 1M/month, timezone: Europe/Berlin, alert_at: [99%] }
  org-day: { per: org, usd: 1M/day, window: rolling }
keys:
  - { id: bench, key: sk-bench, org: acme }
upstreams:
  llm: { provider: openai, targets: ${target}, pool: { connections: ${CONNECTIONS} } }
routes:
  - { path: /v1/, upstream: llm, auth: key, budgets: [key-month, org-day] }
  - { path: /nobudget/, upstream: llm, auth: key, strip_prefix: true }
`)
  const proxy = start(process.execPath, [CLI, 'start', '-c', file], { taskset, cpus: serverCpus, cwd: dir })
  const ready = await waitForJson(proxy, (v) => v.msg === 'ready')
  const base = { ...SCENARIOS.chat, headers: { ...SCENARIOS.chat.headers, authorization: 'Bearer sk-bench' } }
  const cases = {
    budgets: base,
    none: { ...base, path: '/nobudget' + base.path },
  }
  const totals = { budgets: { cpu: 0, req: 0 }, none: { cpu: 0, req: 0 } }
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
  const b = per(totals.budgets)
  const n = per(totals.none)
  console.log(`\n1 KB chat POST, proxy CPU/request: key auth + cost + 2 budgets ${b.toFixed(1)} µs vs key auth + cost without budgets ${n.toFixed(1)} µs = ${(b / n).toFixed(2)}× (goal ≤ 1.05×)`)
  await stop(proxy)
  await stop(stub.proc)
} finally {
  await stopAll()
  rmSync(dir, { recursive: true, force: true })
}
