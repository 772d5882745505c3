// Issue-18 measurement: proxy CPU per request of the response cache, one proxy (1 worker thread; the cache owner runs
// on the generation's main thread and is counted too), interleaved rounds, same run:
//   gethit  the small GET answered from the cache                   vs  get: the small GET plain path (goal ≤ 1.0×)
//   hit   1 KB chat POST (temperature 0) answered from the cache   vs  get, and vs the same POST proxied without a cache
//   miss  1 KB chat POSTs, every body distinct, through a cached route (lookup, upstream, copy to the owner, store)
//         vs  the same POSTs through the same OpenAI route without a cache (goal ≤ 1.05×)
//   node bench/macro/cache.mjs            (ROUNDS=2 DURATION=4 CONNECTIONS=64; needs wrk)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI, startStub } from './leaky.mjs'
import { start, waitForJson, stop, stopAll, which } from './procs.mjs'
import { cpuSeconds } from './cpu.mjs'
import { wrkRun, wrkScript } from './wrk.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { allowedCpus } from './machine.mjs'

const ROUNDS = Number(process.env.ROUNDS ?? 2)
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
const dir = mkdtempSync(join(tmpdir(), 'leaky-cache-bench-'))

/** A wrk script whose every request body is distinct (a counter in the prompt): each one a cache miss. */
function uniqueScript(name, path, body) {
  const [head, tail] = body.split('__N__')
  const lua = `local n = 0
local head = ${JSON.stringify(head)}
local tail = ${JSON.stringify(tail)}
request = function()
  n = n + 1
  return wrk.format("POST", "${path}", { ["content-type"] = "application/json" }, head .. tostring(n) .. "-" .. tostring(math.random(1e9)) .. tail)
end
`
  const file = join(dir, `${name}.lua`)
  writeFileSync(file, lua)
  return file
}

try {
  const stub = await startStub({ taskset, cpus: loadCpus })
  const target = `["http://127.0.0.1:${stub.port}"]`
  const file = join(dir, 'leaky.yaml')
  writeFileSync(file, `listen: 127.0.0.1:0
workers: 1
log: { level: info, access: false }
admin: { listen: 127.0.0.1:0 }
upstreams:
  llm: { provider: openai, targets: ${target}, pool: { connections: ${CONNECTIONS} } }
  plain: { provider: none, targets: ${target}, pool: { connections: ${CONNECTIONS} } }
routes:
  - { path: /v1/, upstream: llm }
  - { path: /c/, upstream: llm, strip_prefix: true, cache: { when: always, scope: global } }
  - { path: /plain/, upstream: plain, strip_prefix: true }
  - { path: /cg/, upstream: plain, strip_prefix: true, cache: { methods: [GET], when: always, scope: global } }
cache: { memory: 64mb }
`)
  const proxy = start(process.execPath, [CLI, 'start', '-c', file], { taskset, cpus: serverCpus, cwd: dir })
  const ready = await waitForJson(proxy, (v) => v.msg === 'ready')
  const chat = SCENARIOS.chat
  const fixed = { ...chat, path: '/c' + chat.path, body: JSON.stringify({ ...JSON.parse(chat.body), temperature: 0 }) }
  const template = JSON.stringify({ ...JSON.parse(chat.body), temperature: 0 }).replace('"You are a terse', '"__N__ You are a terse')
  const cases = {
    get: { scenario: { ...SCENARIOS.get, path: '/plain' + SCENARIOS.get.path }, script: null },
    gethit: { scenario: { ...SCENARIOS.get, path: '/cg' + SCENARIOS.get.path }, script: null },
    hit: { scenario: fixed, script: wrkScript(dir, 'hit', fixed) },
    nocache: { scenario: { ...chat }, script: uniqueScript('nocache', chat.path, template) },
    miss: { scenario: { ...chat, path: '/c' + chat.path }, script: uniqueScript('miss', '/c' + chat.path, template) },
  }
  const totals = Object.fromEntries(Object.keys(cases).map((k) => [k, { cpu: 0, req: 0 }]))
  for (let r = 1; r <= ROUNDS; r++) {
    // alternating order: no case always runs right after the same other one
    const order = r % 2 === 1 ? Object.entries(cases) : Object.entries(cases).reverse()
    for (const [name, { scenario, script }] of order) {
      const url = `http://127.0.0.1:${ready.port}`
      await wrkRun({ bin: wrk, url, scenario, script, connections: CONNECTIONS, threads: 1, seconds: 1, taskset, cpus: loadCpus })
      const c0 = cpuSeconds(proxy.pid)
      const res = await wrkRun({ bin: wrk, url, scenario, script, connections: CONNECTIONS, threads: 1, seconds: DURATION, taskset, cpus: loadCpus })
      const cpu = cpuSeconds(proxy.pid) - c0
      if (res.non2xx > 0 || res.errors > 0) throw new Error(`${name}: ${res.non2xx} non-2xx, ${res.errors} socket errors`)
      totals[name].cpu += cpu
      totals[name].req += res.requests
      console.log(`round ${r} ${name.padEnd(7)} ${res.rps.toFixed(0).padStart(6)} req/s  ${((cpu / res.requests) * 1e6).toFixed(1)} µs CPU/req`)
    }
  }
  const per = (k) => (totals[k].cpu / totals[k].req) * 1e6
  console.log(`\nGET hit ${per('gethit').toFixed(1)} µs vs small GET plain ${per('get').toFixed(1)} µs = ${(per('gethit') / per('get')).toFixed(2)}× (goal ≤ 1.0×)`)
  console.log(`1 KB chat POST hit ${per('hit').toFixed(1)} µs vs the same POST proxied (no cache) ${per('nocache').toFixed(1)} µs = ${(per('hit') / per('nocache')).toFixed(2)}×`)
  console.log(`hit ${per('hit').toFixed(1)} µs vs small GET plain ${per('get').toFixed(1)} µs = ${(per('hit') / per('get')).toFixed(2)}× (goal ≤ 1.0×)`)
  console.log(`miss ${per('miss').toFixed(1)} µs vs no cache ${per('nocache').toFixed(1)} µs = ${(per('miss') / per('nocache')).toFixed(2)}× (goal ≤ 1.05×)`)
  await stop(proxy)
  await stop(stub.proc)
} finally {
  await stopAll()
  rmSync(dir, { recursive: true, force: true })
}
