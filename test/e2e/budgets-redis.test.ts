// A `scope: cluster` budget shared by three real proxy processes (`workers: 1` each, embedded stub, gpt-4o-mini at
// the shipped prices) through one real redis-server, on the test-only clock: concurrent requests spread over the
// proxies never overshoot the one budget and spend it to less than one request's worst case; Redis's counter equals
// the reported usage's cost after reconcile, to the nano-USD; the month rolls over for every proxy at Berlin
// midnight; Redis killed → on_error closed answers 503, on_error local counts on this proxy's share.
// Spawns dist/cli/main.js: build first (npm run build).
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { Redis } from 'ioredis'
import { baseConfig, startProxy, type LogLine, type Proxy } from '../helpers/proxy.js'
import { startRedis } from '../helpers/redis.js'
import { SCRATCH_TMP } from '../helpers/scratch.js'

const dir = mkdtempSync(path.join(SCRATCH_TMP, 'budgets-redis-'))
const clock = path.join(dir, 'clock')
writeFileSync(clock, '2026-01-31T22:00:00Z') // 23:00 in Berlin
const BUDGET_USD = 0.003
const IN = 150_000
const OUT = 600_000
const redis = await startRedis()
t.teardown(() => redis.stop())
const client = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 })
t.teardown(() => client.disconnect())

const yaml = baseConfig(`redis: { url: "${redis.url}", timeout: 200ms, on_error: closed, expected_instances: 3 }
keys:
  - { id: a1, key: "k-a1", org: acme }
budgets:
  team: { per: global, usd: ${BUDGET_USD}/month, timezone: Europe/Berlin, scope: cluster, alert_at: [50%] }
  share: { per: org, usd: 0.003/day, scope: cluster, on_error: local }
upstreams:
  llm: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: llm, auth: key, budgets: [team] }
  - { path: /shared/, upstream: llm, auth: key, strip_prefix: true, budgets: [share] }
`).replace(/^workers: \d+$/m, 'workers: 1')
const env = { LEAKY_TEST_CLOCK: clock }
const proxies: Proxy[] = await Promise.all([0, 1, 2].map(() => startProxy(yaml, { env })))
t.teardown(() => Promise.all(proxies.map((p) => p.stop())))

// answers shorter than max_tokens (200), of varying length: the reconcile gives back a different amount each time
let sent = 0
const stubTokens = () => 20 + ((sent++ * 37) % 150)

interface Shot {
  status: number
  headers: Record<string, string>
  body: string
  line: LogLine
}

async function chat(p: Proxy, prefix = '/v1'): Promise<Shot> {
  const r = await request(p.url(`${prefix === '/v1' ? '' : prefix}/v1/chat/completions`), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer k-a1', 'x-stub-tokens': String(stubTokens()) },
    body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 200, messages: [{ role: 'user', content: 'spend some money on this answer, please' }] }),
  })
  const body = await r.body.text()
  const id = r.headers['x-request-id'] as string
  const line = await p.waitLog((l) => l.msg === 'access' && l.req_id === id)
  return { status: r.statusCode, headers: r.headers as Record<string, string>, body, line }
}

const nano = (s: Shot) => Math.ceil(((s.line.tokens_prompt as number) * IN + (s.line.tokens_completion as number) * OUT) / 1000)
const JAN = Date.parse('2025-12-31T23:00:00Z') // January 1st, 00:00 in Berlin: the window's start, in the key
const counter = async (start: number) => Number(await client.get(`leaky:budget:{b}:team:${start}:`) ?? 0)

t.test('three proxies, one budget: no overshoot, spent to less than one worst case, Redis counts the real cost', async (t) => {
  const shots: Shot[] = []
  for (let wave = 0; wave < 4; wave++) {
    shots.push(...await Promise.all(Array.from({ length: 9 }, (_, i) => chat(proxies[i % 3]))))
  }
  let last: Shot | null = null
  for (let i = 0; i < 60 && last === null; i++) {
    const s = await chat(proxies[i % 3])
    shots.push(s)
    if (s.status !== 200) last = s
  }
  const ok = shots.filter((s) => s.status === 200)
  const denied = shots.filter((s) => s.status !== 200)
  t.ok(ok.length >= 15, `${ok.length} admitted`)
  t.ok(last !== null, `${denied.length} refused`)
  for (let p = 0; p < 3; p++) t.ok(ok.some((s) => proxies[p].lines.includes(s.line)), `proxy ${p} admitted some`)
  const spent = ok.reduce((a, s) => a + nano(s), 0)
  t.ok(spent <= BUDGET_USD * 1e9, `spent ${spent} nano-USD ≤ ${BUDGET_USD * 1e9} across three proxies`)
  for (const s of denied) {
    t.equal(s.status, 429)
    t.equal(JSON.parse(s.body).error.code, 'LEAKY_BUDGET_EXCEEDED')
    t.equal(s.headers['x-budget-reset'], '2026-01-31T23:00:00.000Z')
  }
  const worst = (last!.line.tokens_estimate as number) * OUT / 1000
  t.ok(BUDGET_USD * 1e9 - spent < worst, `left ${BUDGET_USD * 1e9 - spent} < the refused request's worst case ${worst}`)
  t.equal(await counter(JAN), spent, 'Redis\'s counter is the sum of the reconciled costs, exactly')
  t.ok(await client.pttl(`leaky:budget:{b}:team:${JAN}:`) > 86_400_000, 'the counter outlives its window by a day')
  // alerts come from the levels Redis answers: each proxy that saw the budget past 50% logs it once
  const alerts = proxies.map((p) => p.lines.filter((l) => l.msg === 'budget alert' && l.budget === 'team'))
  t.ok(alerts.some((a) => a.length === 1), 'at least one proxy alerted')
  for (const a of alerts) {
    t.ok(a.length <= 1, 'at most once per proxy and window')
    for (const l of a) t.same([l.threshold, l.window_start], ['50%', '2025-12-31T23:00:00.000Z'])
  }
})

t.test('the month rolls over at Berlin midnight on every proxy', async (t) => {
  writeFileSync(clock, '2026-01-31T23:00:00.000Z')
  for (const p of proxies) t.equal((await chat(p)).status, 200)
  t.ok(await counter(Date.parse('2026-01-31T23:00:00Z')) > 0, 'February has its own counter')
})

t.test('Redis down: on_error closed refuses with 503, on_error local counts on this proxy\'s share', async (t) => {
  await redis.stop()
  const closed = await chat(proxies[0])
  t.equal(closed.status, 503)
  t.equal(JSON.parse(closed.body).error.code, 'LEAKY_REDIS_UNAVAILABLE')
  // share: 0.003/day over 3 expected instances = 0.001 a proxy, while Redis is away
  const shots: Shot[] = []
  for (let i = 0; i < 40; i++) {
    const s = await chat(proxies[1], '/shared')
    shots.push(s)
    if (s.status !== 200) break
  }
  const ok = shots.filter((s) => s.status === 200)
  t.ok(ok.length >= 3, `${ok.length} admitted on the local share`)
  const spent = ok.reduce((a, s) => a + nano(s), 0)
  t.ok(spent <= 1e6, `spent ${spent} nano-USD ≤ the proxy's share of 1e6`)
  const refused = shots[shots.length - 1]
  t.equal(refused.status, 429)
  t.equal(refused.headers['x-budget-limit-usd'], '0.001000', 'the share it was decided against')
})
