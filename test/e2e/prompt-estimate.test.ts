// prompt_estimate: bytes behind the real proxy and the stub: the pre-charge bounds the prompt by its UTF-8 bytes
// (no tokenizer), reconcile replaces it with the reported usage exactly, a denial is decided on the exact count
// (never on the bound), and a response without usage is charged the exact prompt count, not the bound.
import t from 'tap'
import { request } from 'undici'
import { startProxy, baseConfig } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { promptTokens, readPrompt, PER_MESSAGE_TOKENS, REPLY_PRIMER_TOKENS } from '../../src/llm/prompt.js'

const { stub, origin } = await startStub({ seed: 16 })
t.teardown(() => stub.close())

// a prompt whose bytes are far above its tokens: 400 bytes of prose, ~80 tokens
const PROSE = 'the quick brown fox jumps over the lazy dog while a leaky bucket drains at its own steady pace '.repeat(4).trim()
const chat = (content: string, max: number, extra: Record<string, unknown> = {}) =>
  ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: max, ...extra })
const exactOf = (body: unknown) => promptTokens(readPrompt('openai-chat', body))
const boundOf = (content: string) => Buffer.byteLength(content, 'utf8') + PER_MESSAGE_TOKENS + REPLY_PRIMER_TOKENS

// the tight limit's burst: the exact estimate of a PROSE request with max_tokens 10 fits, its byte bound does not
const TIGHT = exactOf(chat(PROSE, 10)) + 20
if (!(boundOf(PROSE) + 10 > TIGHT)) throw new Error('the test needs a prompt whose bound alone would be denied')

const proxy = await startProxy(
  baseConfig(`limits_table: { capacity: 1024 }
limits:
  tokens: { per: key, tokens: 1000/month, burst: 100000 }
  tight: { per: key, tokens: 1000/month, burst: ${TIGHT} }
keys:
  - { id: k-a, key: sk-a }
  - { id: k-tight, key: sk-tight }
  - { id: k-cut, key: sk-cut }
upstreams:
  openai: { provider: openai, targets: ["${origin}"], prompt_estimate: bytes }
routes:
  - { path: /v1/, upstream: openai, auth: key, limits: [tokens] }
  - { path: /tight/, upstream: openai, strip_prefix: true, auth: key, limits: [tight] }
`),
)
t.teardown(() => proxy.stop())

async function post(path: string, body: unknown, headers: Record<string, string>) {
  const res = await request(proxy.url(path), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { res, text: await res.body.text() }
}

t.test('pre-charged at the byte bound, reconciled to the reported usage exactly', async (t) => {
  const body = chat(PROSE, 40)
  const a = await post('/v1/chat/completions', body, { authorization: 'Bearer sk-a', 'x-request-id': 'pe-1', 'x-stub-tokens': '12' })
  t.equal(a.res.statusCode, 200)
  const u = JSON.parse(a.text).usage
  t.equal(u.prompt_tokens, exactOf(body), 'the stub counts the prompt exactly')
  const line = await proxy.waitLog((x) => x.msg === 'access' && x.req_id === 'pe-1')
  t.equal(line.tokens_estimate, boundOf(PROSE) + 40, 'pre-charge = UTF-8 bytes + framing + max_tokens')
  t.ok((line.tokens_estimate as number) > exactOf(body) + 40, 'the bound is above the exact estimate')
  t.equal(line.tokens_source, 'reported')
  t.equal(line.tokens_total, u.total_tokens)
  // the bucket now holds exactly the reported usage: a probe's remaining = burst − usage − the probe's own bound
  const probe = chat('p', 5)
  const p = await post('/v1/chat/completions', probe, { authorization: 'Bearer sk-a' })
  t.equal(p.res.statusCode, 200)
  t.equal(Number(p.res.headers['x-ratelimit-remaining-tokens']), 100000 - u.total_tokens - (boundOf('p') + 5))
})

t.test('a denial is decided on the exact count, never on the bound', async (t) => {
  const ok = await post('/tight/v1/chat/completions', chat(PROSE, 10), { authorization: 'Bearer sk-tight', 'x-request-id': 'pe-fit', 'x-stub-tokens': '1' })
  t.equal(ok.res.statusCode, 200, 'admitted: its exact estimate fits the burst though its bound does not')
  const line = await proxy.waitLog((x) => x.msg === 'access' && x.req_id === 'pe-fit')
  t.equal(line.tokens_estimate, exactOf(chat(PROSE, 10)) + 10, 'charged the exact estimate once the bound was refused')
  const over = await post('/tight/v1/chat/completions', chat(PROSE, 30), { authorization: 'Bearer sk-tight' })
  t.equal(over.res.statusCode, 429)
  const err = JSON.parse(over.text).error
  t.equal(err.code, 'LEAKY_OVER_BURST')
  t.match(err.message, `costs ${exactOf(chat(PROSE, 30)) + 30} tokens`, 'the 429 names the exact cost')
})

t.test('a stream without usage is charged the exact prompt count, not the bound', async (t) => {
  const body = chat(PROSE, 40, { stream: true })
  const r = await post('/v1/chat/completions', body, { authorization: 'Bearer sk-cut', 'x-request-id': 'pe-cut', 'x-stub-error': 'cut' })
  t.equal(r.res.statusCode, 200)
  const line = await proxy.waitLog((x) => x.msg === 'access' && x.req_id === 'pe-cut')
  t.equal(line.tokens_source, 'counted')
  t.equal(line.tokens_prompt, exactOf(body), 'prompt counted exactly from the request')
  t.equal(line.tokens_estimate, boundOf(PROSE) + 40)
})
