// Issue-14 measurement: proxy CPU per request for the same 1 KB chat POST on two routes that differ only in auth —
// `auth: jwt` (an RS256 bearer JWT, steady state: the verified token is answered from the cache by its SHA-256)
// vs `auth: key` (a virtual key) — one proxy, interleaved rounds in alternating order, same run. Then the cost of a
// cache miss (a token never seen: jose's RS256 verification), measured in-process on the built verifier.
//   node bench/macro/jwt-overhead.mjs            (ROUNDS=3 DURATION=4 CONNECTIONS=64 MISSES=2000; needs wrk, dist/)
import { loadavg } from 'node:os'
import { generateKeyPair, exportSPKI, SignJWT } from 'jose'
import { startStub } from './leaky.mjs'
import { stop } from './procs.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { interleave, makeRig, startLeaky, withRig, yamlHead } from './ab.mjs'
import { parseConfig } from '../../dist/config/index.js'
import { JwtVerifier } from '../../dist/auth/jwt.js'

const MISSES = Number(process.env.MISSES ?? 2000)
const rig = makeRig('jwt')
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
await withRig(rig, async () => {
  const stub = await startStub(rig.load)
  const target = `["http://127.0.0.1:${stub.port}"]`
  const proxy = await startLeaky(rig, `${yamlHead()}keys:
  - { id: bench, key: sk-bench }
${jwtSection}upstreams:
  llm: { provider: openai, targets: ${target}, pool: { connections: ${rig.connections} } }
routes:
  - { path: /v1/, upstream: llm, auth: key }
  - { path: /jwt/, upstream: llm, strip_prefix: true, auth: jwt }
`)
  const base = SCENARIOS.chat
  const jwt = await token('bench-user')
  const cases = {
    key: { ...base, headers: { ...base.headers, authorization: 'Bearer sk-bench' } },
    jwt: { ...base, path: '/jwt' + base.path, headers: { ...base.headers, authorization: `Bearer ${jwt}` } },
  }
  const totals = await interleave(rig, [
    { name: 'key', url: proxy.url, pid: proxy.proc.pid, scenario: cases.key },
    { name: 'jwt', url: proxy.url, pid: proxy.proc.pid, scenario: cases.jwt },
  ])
  const k = totals.key.us
  const j = totals.jwt.us
  console.log(`\n1 KB chat POST, proxy CPU/request: auth: jwt (cached RS256 token) ${j.toFixed(1)} µs vs auth: key ${k.toFixed(1)} µs = ${(j - k >= 0 ? '+' : '')}${(j - k).toFixed(1)} µs (goal ≤ 5 µs)`)
  await stop(proxy.proc)
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
})
