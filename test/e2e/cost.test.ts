// Cost per request through a real proxy (2 workers, the stub upstream reporting exact usage): the access line's
// cost_usd is the reported usage at the table's prices, /metrics sums to the same, a model without a price is
// counted as unknown (never 0), and a reload that prices it applies to the next request.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { Agent, request } from 'undici'
import { baseConfig, metricValue, scrapeMetrics, startProxy, writeConfig, type LogLine } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'

const { stub, origin } = await startStub({ seed: 11 })
const yaml = (prices: string) => baseConfig(`keys:
  - { id: team-a, key: "team-a-secret", metrics_label: true }
upstreams:
  llm: { provider: openai, targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: llm, auth: key }
${prices}`)
const file = writeConfig(yaml(''))
const proxy = await startProxy(file)
// a new connection per request, so both workers serve some
const agent = new Agent({ pipelining: 0, connections: 1, keepAliveTimeout: 1 })
t.teardown(async () => {
  await agent.close()
  await proxy.stop()
  await stub.close()
})

async function chat(model: string, stream: boolean): Promise<LogLine> {
  const r = await request(proxy.url('/v1/chat/completions'), {
    method: 'POST', dispatcher: agent,
    headers: { 'content-type': 'application/json', authorization: 'Bearer team-a-secret' },
    body: JSON.stringify({ model, stream, max_tokens: 40, messages: [{ role: 'user', content: 'price this answer, please' }] }),
  })
  await r.body.text()
  t.equal(r.statusCode, 200)
  const id = r.headers['x-request-id'] as string
  return proxy.waitLog((l) => l.msg === 'access' && l.req_id === id)
}

/** pico-USD → the access line's six places, as the proxy formats them */
const usd = (pico: number) => (Math.round(pico / 1e6) / 1e6).toFixed(6)

t.test('cost_usd = reported usage × the shipped gpt-4o-mini prices (0.15 / 0.60 per 1 M), JSON and SSE', async (t) => {
  let pico = 0
  for (const stream of [false, true, false, true]) {
    const line = await chat('gpt-4o-mini', stream)
    t.equal(line.tokens_source, 'reported')
    const p = (line.tokens_prompt as number) * 150_000 + (line.tokens_completion as number) * 600_000
    t.ok((line.tokens_completion as number) > 0)
    t.equal(line.cost_usd, usd(p), `stream ${stream}: ${line.tokens_prompt} + ${line.tokens_completion} tokens`)
    pico += p
  }
  const m = await scrapeMetrics(proxy)
  t.equal(Math.round(metricValue(m, 'leaky_llm_cost_usd_total', 'model="gpt-4o-mini"') * 1e9), Math.round(pico / 1000),
    'the metric sums the same costs (nano-USD)')
  t.equal(Math.round(metricValue(m, 'leaky_key_cost_usd_total', 'key_id="team-a"') * 1e9), Math.round(pico / 1000), 'and per key')
  t.match(m, /leaky_llm_cost_usd_total\{upstream="llm",provider="openai",model="gpt-4o-mini"\} /)
})

t.test('a model without a price: no cost_usd, counted as unknown; a reload that prices it applies at once', async (t) => {
  const before = await chat('my-finetune-2026-01-01', false)
  t.equal(before.cost_usd, undefined, 'no cost, not 0')
  t.equal(before.tokens_source, 'reported')
  const m = await scrapeMetrics(proxy)
  t.equal(metricValue(m, 'leaky_llm_cost_unknown_total', 'model="my-finetune"'), 1)
  writeFileSync(file, yaml(`prices:
  openai:
    my-finetune: { input: 2, output: 8, request: 0.0001 }
`))
  process.kill(proxy.child.pid!, 'SIGHUP')
  await proxy.waitLog((l) => l.msg === 'reloaded' && (l.applied as string[]).includes('prices'))
  const after = await chat('my-finetune-2026-01-01', false)
  const p = (after.tokens_prompt as number) * 2_000_000 + (after.tokens_completion as number) * 8_000_000 + 100_000_000
  t.equal(after.cost_usd, usd(p))
  const m2 = await scrapeMetrics(proxy)
  t.equal(metricValue(m2, 'leaky_llm_cost_unknown_total', 'model="my-finetune"'), 1, 'the priced request is not unknown')
})
