// Stage 4 — estimate, after accept, route and the body read, on a real uWS app: on an LLM route the prompt's
// tokens plus the requested maximum output are the pre-charge; OpenAI streams are asked for their usage; a body
// that is no JSON is 400; a route without a provider costs no tokens.
import t from 'tap'
import { stageHarness, stageConfig, Next } from '../../helpers/stage.js'
import { accept } from '../../../src/server/stages/accept.js'
import { route } from '../../../src/server/stages/route.js'
import { estimate } from '../../../src/server/stages/estimate.js'
import { collectBody } from '../../../src/server/body.js'
import { countTokens } from '../../../src/llm/tokenizer.js'

const h = await stageHarness(t, stageConfig(`upstreams:
  openai: { provider: openai, targets: ["http://127.0.0.1:9"] }
  plain: { targets: ["http://127.0.0.1:9"] }
routes:
  - { path: /v1/, upstream: openai }
  - { path: /plain/, upstream: plain }
`), (s, req, done) => {
  if (accept(s, req) !== Next.CONTINUE || route(s) !== Next.CONTINUE) return Next.REPLIED
  if (!s.route!.readsBody) return estimate(s, done)
  collectBody(s, (s) => {
    if (estimate(s, done) === Next.CONTINUE) done(s)
  })
  return Next.PENDING
})

const post = (path: string, body: unknown) => h.send(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) })

t.test('chat: prompt tokens + max_tokens, the model named', async (t) => {
  const content = 'tell me a story about a lighthouse keeper'
  const r = await post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 30 })
  t.equal(r.status, 200)
  t.equal(r.view.shape, 'openai-chat')
  t.equal(r.view.model, 'gpt-4o-mini')
  const prompt = r.view.promptTokens as number
  t.ok(prompt >= countTokens(content), `the prompt counts at least its text (${prompt})`)
  t.equal(r.view.costTokens, prompt + 30)
  t.equal(h.last!.stripUsage, false, 'no stream: nothing asked of the upstream')
})

t.test('a longer max_tokens costs more; an OpenAI stream is asked for its usage', async (t) => {
  const msg = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }
  const a = await post('/v1/chat/completions', { ...msg, max_tokens: 10 })
  const b = await post('/v1/chat/completions', { ...msg, max_tokens: 1000 })
  t.equal((b.view.costTokens as number) - (a.view.costTokens as number), 990)
  await post('/v1/chat/completions', { ...msg, max_tokens: 10, stream: true })
  t.equal(h.last!.stripUsage, true)
  t.match(JSON.parse(h.last!.body!.toString('utf8')), { stream_options: { include_usage: true } }, 'the body sent upstream asks for usage')
})

t.test('no JSON: 400 LEAKY_BAD_JSON; a plain route: no tokens', async (t) => {
  const bad = await post('/v1/chat/completions', '{"model":')
  t.equal(bad.status, 400)
  t.equal(JSON.parse(bad.text).error.code, 'LEAKY_BAD_JSON')
  const plain = await post('/plain/x', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 })
  t.equal(plain.status, 200)
  t.equal(plain.view.shape, null)
  t.equal(plain.view.costTokens, 0)
})
