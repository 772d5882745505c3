// Issue-14 measurement: proxy CPU per request for the same 1 KB chat POST on two routes that differ only in auth —
// `auth: jwt` (an RS256 bearer JWT, steady state: the verified token is answered from the cache by its SHA-256)
// vs `auth: key` (a virtual key) — one proxy, interleaved rounds in alternating order, same run. Then the cost of a
// cache miss (a token never seen: jose's RS256 verification), measured in-process on the built verifier.
//   node bench/macro/jwt-overhead.mjs            (ROUNDS=3 DURATION=4 CONNECTIONS=64 MISSES=2000; needs wrk, dist/)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, exportSPKI, SignJWT } from 'jose'
import { CLI, startStub } from './leaky.mjs'
import { start, waitForJson, stop, stopAll, which } from './procs.mjs'
import { cpuSeconds } from './cpu.mjs'
import { wrkRun, wrkScript } from './wrk.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { allowedCpus } from './machine.mjs'
import { parseConfig } from '../../dist/config/index.js'
import { JwtVerifier } from '../../dist/auth/jwt.js'

const ROUNDS = Number(process.env.ROUNDS ?? 3)
const DURATION = Number(process.env.DURATION ?? 4)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 64)
const MISSES = Number(process.env.MISSES ?? 2000)
const wrk = which('wrk', process.env.WRK)
if (wrk === null) {
  console.error('wrk not found: apt-get install wrk')
  process.exit(1)
}
const taskset = which('taskset', process.env.TASKSET)
const cpus = allowedCpus()
const [loadCpus, serverCpus] = taskset !== null && cpus !== null && cpus.length >= 2 ? [String(cpus[0]), String(cpus[1])] : [null, null]
const dir = mkdtempSync(join(tmpdir(), 'leaky-jwt-bench-'))
console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)

const ISSUER = 'https://idp.bench/'
const { privateKey, publicKey } = await generateKeyPair('RS256')
const pem = await exportSPKI(publicKey)
const token = (sub) => new SignJWT({ sub, iss: ISSUER, aud: 'bench', exp: Math.floor(Date.now() / 1000) + 3600 }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey)
const jwtSection = `jwt:
  issuer: "${ISSUER}"
  audience: bench
  keys:
    - |
${pem.trim().split('\n').map((l) => `      ${l}`).join('\n')}
`
try {
  const stub = await startStub({ taskset, cpus: loadCpus })
  const target = `["http://127.0.0.1:${stub.port}"]`
  const file = join(dir, 'leaky.yaml')
  writeFileSync(file, `listen: 127.0.0.1:0
workers: 1
log: { level: info, access: false }
admin: { listen: 127.0.0.1:0 }
keys:
  - { id: bench, key: sk-bench }
${jwtSection}upstreams:
  llm: { provider: openai, targets: ${target}, pool: { connections: ${CONNECTIONS} } }
routes:
  - { path: /v1/, upstream: llm, auth: key }
  - { path: /jwt/, upstream: llm, strip_prefix: true, auth: jwt }
`)
  const proxy = start(process.execPath, [CLI, 'start', '-c', file], { taskset, cpus: serverCpus, cwd: dir })
  const ready = await waitForJson(proxy, (v) => v.msg === 'ready')
  const base = SCENARIOS.chat
  const jwt = await token('bench-user')
  const cases = {
    key: { ...base, headers: { ...base.headers, authorization: 'Bearer sk-bench' } },
    jwt: { ...base, path: '/jwt' + base.path, headers: { ...base.headers, authorization: `Bearer ${jwt}` } },
  }
  const totals = { key: { cpu: 0, req: 0 }, jwt: { cpu: 0, req: 0 } }
  for (let r = 1; r <= ROUNDS; r++) {
    const order = r % 2 === 1 ? ['key', 'jwt'] : ['jwt', 'key']
    for (const name of order) {
      const scenario = cases[name]
      const script = wrkScript(dir, name, scenario)
      await wrkRun({ bin: wrk, url: `http://127.0.0.1:${ready.port}`, scenario, script, connections: CONNECTIONS, threads: 1, seconds: 1, taskset, cpus: loadCpus })
      const c0 = cpuSeconds(proxy.pid)
      const res = await wrkRun({ bin: wrk, url: `http://127.0.0.1:${ready.port}`, scenario, script, connections: CONNECTIONS, threads: 1, seconds: DURATION, taskset, cpus: loadCpus })
      const cpu = cpuSeconds(proxy.pid) - c0
      if (res.non2xx > 0 || res.errors > 0) throw new Error(`${name}: ${res.non2xx} non-2xx, ${res.errors} socket errors`)
      totals[name].cpu += cpu
      totals[name].req += res.requests
      console.log(`round ${r} ${name.padEnd(3)} ${res.rps.toFixed(0).padStart(6)} req/s  ${((cpu / res.requests) * 1e6).toFixed(1)} µs CPU/req`)
    }
  }
  const per = (t) => (t.cpu / t.req) * 1e6
  const k = per(totals.key)
  const j = per(totals.jwt)
  console.log(`\n1 KB chat POST, proxy CPU/request: auth: jwt (cached RS256 token) ${j.toFixed(1)} µs vs auth: key ${k.toFixed(1)} µs = ${(j - k >= 0 ? '+' : '')}${(j - k).toFixed(1)} µs (goal ≤ 5 µs)`)
  await stop(proxy)
  await stop(stub.proc)

  // a miss: every token new, verified by jose (RS256, 2048-bit); in-process on one core, CPU time per verify
  const cfg = parseConfig(jwtSection, 'bench.yaml', {})
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.issues))
  const v = new JwtVerifier(cfg.config.jwt, {}, { loaded() {}, failed() {} })
  const tokens = await Promise.all(Array.from({ length: MISSES }, (_, i) => token(`miss-${i}`)))
  for (const t of tokens.slice(0, 100)) await v.verify(t, v.digest(t)) // warm-up (these become hits)
  const u0 = process.cpuUsage()
  for (const t of tokens.slice(100)) await v.verify(t, v.digest(t))
  const u = process.cpuUsage(u0)
  const hitToken = tokens[0]
  const h0 = process.cpuUsage()
  const HITS = 200_000
  for (let i = 0; i < HITS; i++) v.cached(v.digest(hitToken), Date.now())
  const h = process.cpuUsage(h0)
  console.log(`verifier in-process: miss (RS256 verify + claims) ${((u.user + u.system) / (MISSES - 100)).toFixed(1)} µs CPU; hit (SHA-256 + lookup) ${((h.user + h.system) / HITS).toFixed(2)} µs CPU`)
  v.close()
} finally {
  await stopAll()
  rmSync(dir, { recursive: true, force: true })
}
