// Issue-15 measurement: proxy CPU per request for the same 1 KB chat POST (gpt-4o-mini, key auth, usage accounting
// and cost) through a route with two budgets (per key calendar month in Europe/Berlin, per org rolling day) against
// the same route without budgets, one proxy, interleaved rounds, same run. Prints the ratio (goal ≤ 1.05×).
//   node bench/macro/budgets-overhead.mjs            (ROUNDS=3 DURATION=4 CONNECTIONS=64; needs wrk)
import { startStub } from './leaky.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { interleave, makeRig, ratioLine, startLeaky, withRig, yamlHead } from './ab.mjs'

const rig = makeRig('budgets')
await withRig(rig, async () => {
  const stub = await startStub(rig.load)
  const target = `["http://127.0.0.1:${stub.port}"]`
  // budgets far above what the bench spends: every request pays for the full pre-charge and reconcile, none is denied
  const proxy = await startLeaky(rig, `${yamlHead()}budgets:
  key-month: { per: key, usd: 1M/month, timezone: Europe/Berlin, alert_at: [99%] }
  org-day: { per: org, usd: 1M/day, window: rolling }
keys:
  - { id: bench, key: sk-bench, org: acme }
upstreams:
  llm: { provider: openai, targets: ${target}, pool: { connections: ${rig.connections} } }
routes:
  - { path: /v1/, upstream: llm, auth: key, budgets: [key-month, org-day] }
  - { path: /nobudget/, upstream: llm, auth: key, strip_prefix: true }
`)
  const base = { ...SCENARIOS.chat, headers: { ...SCENARIOS.chat.headers, authorization: 'Bearer sk-bench' } }
  const t = await interleave(rig, [
    { name: 'budgets', url: proxy.url, pid: proxy.proc.pid, scenario: base },
    { name: 'none', url: proxy.url, pid: proxy.proc.pid, scenario: { ...base, path: '/nobudget' + base.path } },
  ])
  console.log(`\n${ratioLine(t.budgets, t.none, '1 KB chat POST, proxy CPU/request: key auth + cost + 2 budgets vs key auth + cost without budgets', '≤ 1.05×')}`)
})
