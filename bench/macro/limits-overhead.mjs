// Issue-4 measurement: proxy CPU per request for the same 1 KB chat POST through a route with key auth, two
// request limits, one token limit and usage accounting, against the same request through a plain route
// (provider: none, no auth, no limits), one proxy, interleaved rounds, same run. Prints the ratio (goal ≤ 1.15×).
//   node bench/macro/limits-overhead.mjs            (ROUNDS=3 DURATION=4 CONNECTIONS=64; needs wrk)
import { startStub } from './leaky.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { interleave, makeRig, ratioLine, startLeaky, withRig, yamlHead } from './ab.mjs'

const rig = makeRig('limits')
await withRig(rig, async () => {
  const stub = await startStub(rig.load)
  const target = `["http://127.0.0.1:${stub.port}"]`
  // limits far above what the bench reaches: every request pays for the full decision, none is denied
  const proxy = await startLeaky(rig, `${yamlHead()}limits:
  key-rps: { per: key, requests: 1M/s }
  key-rpm: { per: key, requests: 60M/min }
  key-tpm: { per: key, tokens: 10000M/min }
keys:
  - { id: bench, key: sk-bench }
upstreams:
  llm: { provider: openai, targets: ${target}, pool: { connections: ${rig.connections} } }
  plain: { provider: none, targets: ${target}, pool: { connections: ${rig.connections} } }
routes:
  - { path: /v1/, upstream: llm, auth: key, limits: [key-rps, key-rpm, key-tpm] }
  - { path: /plain/, upstream: plain, strip_prefix: true }
`)
  const base = SCENARIOS.chat
  const t = await interleave(rig, [
    { name: 'limited', url: proxy.url, pid: proxy.proc.pid, scenario: { ...base, headers: { ...base.headers, authorization: 'Bearer sk-bench' } } },
    { name: 'plain', url: proxy.url, pid: proxy.proc.pid, scenario: { ...base, path: '/plain' + base.path } },
  ])
  console.log(`\n${ratioLine(t.limited, t.plain, '1 KB chat POST, proxy CPU/request: key auth + 2 request limits + 1 token limit + usage accounting vs plain', '≤ 1.15×')}`)
})
