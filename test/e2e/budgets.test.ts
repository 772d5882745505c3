// Budgets in money through one real proxy (2 workers, the embedded stub reporting exact usage, gpt-4o-mini at the
// shipped 0.15 / 0.60 USD per 1 M tokens), on the test-only clock (LEAKY_TEST_CLOCK) set to 23:00 on Jan 31 in
// Europe/Berlin: concurrent requests never spend more than the budget and spend it until less than one request's
// worst case is left; the 429 says when the window resets; the spend gauge equals the reported usage's cost after
// reconcile; one alert per threshold for the whole proxy; the calendar month rolls over at local midnight; the
// window's spend survives a reload, a restart (state file) and an upgrade (bucket handover). Spawns dist/cli/main.js: build first.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { Agent, request } from 'undici'
import { request } from 'undici'
import { baseConfig, metricValue, scrapeMetrics, startProxy, type LogLine, type Proxy } from '../helpers/proxy.js'
import { SCRATCH_TMP } from '../helpers/scratch.js'

const dir = mkdtempSync(path.join(SCRATCH_TMP, 'budgets-'))
const clock = path.join(dir, 'clock')
const BUDGET_USD = 0.002
const IN = 150_000 // pico-USD per prompt token, gpt-4o-mini
const OUT = 600_000 // per completion token
writeFileSync(clock, '2026-01-31T22:00:00Z') // 23:00 in Berlin: the January window ends in an hour
const yaml = (alerts: string) => baseConfig(`state_file: ${path.join(dir, 'buckets.snap')}
keys:
  - { id: a1, key: "k-a1", org: acme }
  - { id: a2, key: "k-a2", org: acme }
  - { id: b1, key: "k-b1", org: beta }
budgets:
  team: { per: org, usd: ${BUDGET_USD}/month, window: calendar, timezone: Europe/Berlin, alert_at: [${alerts}] }
upstreams:
  llm: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: llm, auth: key, budgets: [team] }
`)
const file = path.join(dir, 'leaky.yaml')
writeFileSync(file, yaml('25%, 50%'))
const env = { LEAKY_TEST_CLOCK: clock }
let proxy: Proxy = await startProxy(file, { env })
const agent = new Agent({ pipelining: 0, connections: 8, keepAliveTimeout: 1 })
t.teardown(async () => {
  await agent.close()
  await proxy.stop()
})

// answers shorter than max_tokens (200), of varying length: the reconcile gives back a different amount each time
let sent = 0
const stubTokens = () => 20 + ((sent++ * 37) % 150)

interface Shot {
  status: number
  headers: Record<string, string>
  body: string
  line: LogLine
}

async function chat(key: string, model = 'gpt-4o-mini'): Promise<Shot> {
  const r = await request(proxy.url('/v1/chat/completions'), {
    method: 'POST', dispatcher: agent,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, 'x-stub-tokens': String(stubTokens()) },
    body: JSON.stringify({ model, max_tokens: 200, messages: [{ role: 'user', content: 'spend some money on this answer, please' }] }),
  })
  const body = await r.body.text()
  const id = r.headers['x-request-id'] as string
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === id)
  return { status: r.statusCode, headers: r.headers as Record<string, string>, body, line }
}

/** the cost of an admitted request at the shipped prices, from the usage the upstream reported */
const pico = (s: Shot) => (s.line.tokens_prompt as number) * IN + (s.line.tokens_completion as number) * OUT
/** what the budget counts for it: nano-USD, rounded up */
const nano = (s: Shot) => Math.ceil(pico(s) / 1000)
const spentGauge = async (subject: string) => metricValue(await scrapeMetrics(proxy), 'leaky_budget_spent_usd', `budget="team",subject="${subject}"`)

let spentNano = 0

t.test('concurrent requests never overshoot the budget, and spend it down to less than one request\'s worst case', async (t) => {
  const shots: Shot[] = []
  for (let wave = 0; wave < 4; wave++) {
    shots.push(...await Promise.all(Array.from({ length: 8 }, (_, i) => chat(i % 2 === 0 ? 'k-a1' : 'k-a2'))))
  }
  // then one at a time until the budget refuses: nothing in flight holds a pre-charge any more
  let last: Shot | null = null
  for (let i = 0; i < 40; i++) {
    const s = await chat('k-a1')
    shots.push(s)
    if (s.status !== 200) {
      last = s
      break
    }
  }
  const ok = shots.filter((s) => s.status === 200)
  const denied = shots.filter((s) => s.status !== 200)
  t.ok(ok.length >= 10, `${ok.length} admitted`)
  t.ok(denied.length >= 1 && last !== null, `${denied.length} refused`)
  for (const s of ok) t.equal(s.line.tokens_source, 'reported')
  spentNano = ok.reduce((a, s) => a + nano(s), 0)
  t.ok(spentNano <= BUDGET_USD * 1e9, `spent ${spentNano} nano-USD ≤ the budget ${BUDGET_USD * 1e9}: never overshot`)
  for (const s of denied) {
    t.equal(s.status, 429)
    t.equal(JSON.parse(s.body).error.code, 'LEAKY_BUDGET_EXCEEDED')
    t.equal(s.line.error, 'LEAKY_BUDGET_EXCEEDED')
    t.equal(s.line.limit, 'team', 'the access line names the budget')
    t.equal(s.headers['x-budget-reset'], '2026-01-31T23:00:00.000Z', 'February starts at midnight in Berlin')
    t.equal(s.headers['retry-after'], '3600')
    t.equal(s.headers['x-budget-limit-usd'], '0.002000')
  }
  // the last refusal came with nothing in flight: what is left is less than that request's most possible cost
  const left = BUDGET_USD * 1e9 - spentNano
  const worst = (last!.line.tokens_estimate as number) * OUT / 1000
  t.ok(left < worst, `left ${left} nano-USD < the refused request's worst case ${worst}: the budget was used, not starved`)
  t.equal(Number(last!.headers['x-budget-remaining-usd']), Math.floor(left / 1000) / 1e6, 'x-budget-remaining-usd: what is left')
  t.match(JSON.parse(last!.body).error.message, /budget "team" exceeded \(\$0\.002 per month \(calendar, Europe\/Berlin\)\)/)
  t.equal(Math.round((await spentGauge('acme')) * 1e9), spentNano, 'the spend gauge is the reported usage\'s cost after reconcile')
  // the status page's spend panel: the same spend, the amount and when the window resets
  const st = await request(`http://127.0.0.1:${proxy.adminPort}/status.json`)
  const panel = ((await st.body.json()) as { spend: { budgets: Array<{ budget: string; per: string; limit_usd: number; resets_at: string; spent: Array<{ subject: string; usd: number }> }> } }).spend
  const team = panel.budgets.find((b) => b.budget === 'team')!
  t.match(team, { per: 'org', limit_usd: BUDGET_USD, resets_at: '2026-01-31T23:00:00.000Z' }, 'the spend panel: the budget, its amount and its reset')
  t.equal(Math.round(team.spent.find((x) => x.subject === 'acme')!.usd * 1e9), spentNano, 'the spend panel: what acme spent')
  const other = await chat('k-b1')
  t.equal(other.status, 200, 'another org has its own budget')
})

t.test('one alert per threshold per window for the whole proxy (2 workers): a log line and a counter', async (t) => {
  const m = await scrapeMetrics(proxy)
  t.equal(metricValue(m, 'leaky_budget_alerts_total', 'budget="team",threshold="25%"'), 1)
  t.equal(metricValue(m, 'leaky_budget_alerts_total', 'budget="team",threshold="50%"'), 1)
  const lines = proxy.lines.filter((l) => l.msg === 'budget alert')
  t.same(lines.map((l) => [l.subject, l.threshold, l.window_start]).sort(), [
    ['acme', '25%', '2025-12-31T23:00:00.000Z'], ['acme', '50%', '2025-12-31T23:00:00.000Z'],
  ])
  t.equal(metricValue(m, 'leaky_budget_limit_usd', 'budget="team"'), BUDGET_USD)
  t.equal(metricValue(m, 'leaky_budget_reset_timestamp_seconds', 'budget="team"'), Date.parse('2026-01-31T23:00:00Z') / 1000)
})

t.test('a model without a price: the budget cannot be checked, 403 says why', async (t) => {
  const s = await chat('k-b1', 'my-finetune')
  t.equal(s.status, 403)
  t.equal(JSON.parse(s.body).error.code, 'LEAKY_BUDGET_NO_PRICE')
  t.match(JSON.parse(s.body).error.message, /model "my-finetune" has no price/)
})

t.test('a reload keeps the window\'s spend', async (t) => {
  writeFileSync(file, yaml('25%, 50%, 90%'))
  process.kill(proxy.child.pid!, 'SIGHUP')
  await proxy.waitLog((l) => l.msg === 'reloaded' && (l.applied as string[]).includes('budgets'))
  t.equal((await chat('k-a2')).status, 429)
  t.equal(Math.round((await spentGauge('acme')) * 1e9), spentNano)
})

t.test('a restart keeps the window\'s spend (state file)', async (t) => {
  t.equal(await proxy.stop(), 0)
  proxy = await startProxy(file, { env })
  await proxy.waitLog((l) => l.msg === 'buckets restored')
  t.equal(Math.round((await spentGauge('acme')) * 1e9), spentNano, 'the same spend, to the nano-USD')
  t.equal((await chat('k-a1')).status, 429)
})

t.test('an upgrade (SIGUSR2) hands the window\'s spend to the new generation', async (t) => {
  proxy.child.kill('SIGUSR2')
  const up = await proxy.waitLog((l) => l.msg === 'upgraded', 60_000)
  t.equal(up.generation, 2)
  if (typeof up.admin_port === 'number') proxy.adminPort = up.admin_port
  t.equal(Math.round((await spentGauge('acme')) * 1e9), spentNano, 'the same spend, to the nano-USD')
  t.equal((await chat('k-a2')).status, 429)
})

t.test('the calendar month rolls over at midnight in Berlin, not a millisecond earlier', async (t) => {
  writeFileSync(clock, '2026-01-31T22:59:59.999Z')
  const before = await chat('k-a1')
  t.equal(before.status, 429)
  t.equal(before.headers['retry-after'], '1')
  writeFileSync(clock, '2026-01-31T23:00:00.000Z')
  const after = await chat('k-a1')
  t.equal(after.status, 200, 'February: a new budget')
  t.equal(Math.round((await spentGauge('acme')) * 1e9), nano(after), 'the new window holds only this request')
  const m = await scrapeMetrics(proxy)
  t.equal(metricValue(m, 'leaky_budget_reset_timestamp_seconds', 'budget="team"'), Date.parse('2026-02-28T23:00:00Z') / 1000,
    'February ends on the 28th at midnight in Berlin')
})
