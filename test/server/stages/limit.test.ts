// Stage 5 — limit and its budgets (stages/limit.ts, stages/budget.ts), after accept, route, identify, the body and
// the estimate, on a real uWS app: every bucket charged all or nothing, a denial is 429 with Retry-After and the
// rate-limit headers, a request that can never fit is told so, and a budget in money refuses what it cannot pay
// for. The harness answers an admitted request itself (no upstream answered it), so account reconciles its tokens
// to 0 — the tokens come back, the request counts.
import t from 'tap'
import { stageHarness, stageConfig, Next, type RequestState } from '../../helpers/stage.js'
import { accept } from '../../../src/server/stages/accept.js'
import { route } from '../../../src/server/stages/route.js'
import { identify } from '../../../src/server/stages/identify.js'
import { estimate } from '../../../src/server/stages/estimate.js'
import { limit } from '../../../src/server/stages/limit.js'
import { collectBody } from '../../../src/server/body.js'

const h = await stageHarness(t, stageConfig(`limits:
  rpm: { per: key, requests: 3/hour, burst: 3 }
  tokens: { per: key, tokens: 1000/day, burst: 200 }
budgets:
  cheap: { per: key, usd: 0.0005/day }
keys:
  - { id: k1, key: sk-1 }
  - { id: k2, key: sk-2 }
  - { id: k3, key: sk-3 }
upstreams:
  openai: { provider: openai, targets: ["http://127.0.0.1:9"] }
routes:
  - { path: /budget/, upstream: openai, auth: key, budgets: [cheap] }
  - { path: /, upstream: openai, auth: key, limits: [rpm, tokens] }
`), (s, req, done) => {
  if (accept(s, req) !== Next.CONTINUE || route(s) !== Next.CONTINUE) return Next.REPLIED
  const after = (s: RequestState) => {
    if (estimate(s, done) !== Next.CONTINUE) return
    if (limit(s, done) === Next.CONTINUE) done(s)
  }
  if (identify(s, after) !== Next.CONTINUE) return Next.REPLIED
  collectBody(s, after)
  return Next.PENDING
})

const chat = (key: string, maxTokens: number, path = '/v1/chat/completions', model = 'gpt-4o-mini') => h.send(path, {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
  body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens }),
})

t.test('admitted: charged, the rate-limit state on the response', async (t) => {
  const r = await chat('sk-1', 50)
  t.equal(r.status, 200)
  t.equal(r.view.charged, true)
  const rh = r.view.responseHeaders as string[]
  t.ok(rh.includes('x-ratelimit-remaining-requests'), 'request headers')
  t.ok(rh.includes('x-ratelimit-remaining-tokens'), 'token headers')
  t.equal(rh[rh.indexOf('x-ratelimit-remaining-requests') + 1], '2')
})

t.test('the request limit denies the 4th request: 429, Retry-After, the limit named', async (t) => {
  await chat('sk-2', 10)
  await chat('sk-2', 10)
  t.equal((await chat('sk-2', 10)).status, 200, 'tokens came back each time: only the requests count')
  const r = await chat('sk-2', 10)
  t.equal(r.status, 429)
  t.equal(JSON.parse(r.text).error.code, 'LEAKY_RATE_LIMITED')
  t.match(JSON.parse(r.text).error.message, /rate limit "rpm" exceeded/)
  t.ok(Number(r.headers['retry-after']) > 0)
  t.equal(r.headers['x-ratelimit-remaining-requests'], '0')
  t.equal(h.last!.limitDenied, 'rpm')
  t.equal(h.last!.charged, false)
  t.equal((await chat('sk-3', 10)).status, 200, 'another key has its own bucket')
})

t.test('a request costing more tokens than the burst can never be admitted', async (t) => {
  const r = await chat('sk-3', 5000)
  t.equal(r.status, 429)
  t.equal(JSON.parse(r.text).error.code, 'LEAKY_OVER_BURST')
  t.match(JSON.parse(r.text).error.message, /holds at most 200/)
})

t.test('budgets: the worst case must fit, the model must have a price', async (t) => {
  const ok = await chat('sk-1', 10, '/budget/v1/chat/completions')
  t.equal(ok.status, 200)
  t.equal(ok.view.budgetCharged, true)
  t.ok((ok.view.budgetPico as number) > 0, 'pre-charged its most possible cost')
  const over = await chat('sk-1', 100_000, '/budget/v1/chat/completions')
  t.equal(over.status, 429)
  t.equal(JSON.parse(over.text).error.code, 'LEAKY_BUDGET_EXCEEDED')
  t.equal(over.headers['x-budget-name'], 'cheap')
  const unpriced = await chat('sk-1', 10, '/budget/v1/chat/completions', 'no-such-model')
  t.equal(unpriced.status, 403)
  t.equal(JSON.parse(unpriced.text).error.code, 'LEAKY_BUDGET_NO_PRICE')
})
