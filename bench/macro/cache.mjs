// Issue-18 measurement: proxy CPU per request of the response cache, one proxy (1 worker thread; the cache owner runs
// on the generation's main thread and is counted too), interleaved rounds, same run:
//   gethit  the small GET answered from the cache                   vs  get: the small GET plain path (goal ≤ 1.0×)
//   hit   1 KB chat POST (temperature 0) answered from the cache   vs  get, and vs the same POST proxied without a cache
//   miss  1 KB chat POSTs, every body distinct, through a cached route (lookup, upstream, copy to the owner, store)
//         vs  the same POSTs through the same OpenAI route without a cache (goal ≤ 1.05×)
//   node bench/macro/cache.mjs            (ROUNDS=2 DURATION=4 CONNECTIONS=64; needs wrk)
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startStub } from './leaky.mjs'
import { wrkScript } from './wrk.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { interleave, makeRig, startLeaky, withRig, yamlHead } from './ab.mjs'

const rig = makeRig('cache', { rounds: 2 })
const dir = rig.dir

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

await withRig(rig, async () => {
  const stub = await startStub(rig.load)
  const target = `["http://127.0.0.1:${stub.port}"]`
  const proxy = await startLeaky(rig, `${yamlHead()}upstreams:
  llm: { provider: openai, targets: ${target}, pool: { connections: ${rig.connections} } }
  plain: { provider: none, targets: ${target}, pool: { connections: ${rig.connections} } }
routes:
  - { path: /v1/, upstream: llm }
  - { path: /c/, upstream: llm, strip_prefix: true, cache: { when: always, scope: global } }
  - { path: /plain/, upstream: plain, strip_prefix: true }
  - { path: /cg/, upstream: plain, strip_prefix: true, cache: { methods: [GET], when: always, scope: global } }
cache: { memory: 64mb }
`)
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
  const totals = await interleave(rig, Object.entries(cases).map(([name, c]) => ({ name, url: proxy.url, pid: proxy.proc.pid, ...c })))
  const per = (k) => totals[k].us
  console.log(`\nGET hit ${per('gethit').toFixed(1)} µs vs small GET plain ${per('get').toFixed(1)} µs = ${(per('gethit') / per('get')).toFixed(2)}× (goal ≤ 1.0×)`)
  console.log(`1 KB chat POST hit ${per('hit').toFixed(1)} µs vs the same POST proxied (no cache) ${per('nocache').toFixed(1)} µs = ${(per('hit') / per('nocache')).toFixed(2)}×`)
  console.log(`hit ${per('hit').toFixed(1)} µs vs small GET plain ${per('get').toFixed(1)} µs = ${(per('hit') / per('get')).toFixed(2)}× (goal ≤ 1.0×)`)
  console.log(`miss ${per('miss').toFixed(1)} µs vs no cache ${per('nocache').toFixed(1)} µs = ${(per('miss') / per('nocache')).toFixed(2)}× (goal ≤ 1.05×)`)
})
