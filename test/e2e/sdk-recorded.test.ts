// The official Anthropic and OpenAI (Responses API) SDKs, at their default settings (Accept-Encoding included),
// against the proxy with real recorded provider streams behind it (../shared/recorded): the SDK parses the answer,
// the proxy meters what the provider reported, and its own refusals come in each provider's error shape.
import t from 'tap'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { startProxy, baseConfig } from '../helpers/proxy.js'
import { startReplay } from '../helpers/replay.js'

const replay = await startReplay()
t.teardown(() => replay.close())
const proxy = await startProxy(baseConfig(`limits:
  tokens: { per: key, tokens: 1M/month, burst: 1000000 }
  once: { per: key, requests: 1/hour, burst: 1 }
keys:
  - { id: claude-app, key: sk-claude }
  - { id: claude-limited, key: sk-claude-once }
  - { id: resp-app, key: sk-resp }
  - { id: resp-limited, key: sk-resp-once }
upstreams:
  anthropic: { provider: anthropic, targets: ["${replay.origin}"], headers: { x-api-key: upstream-key } }
  openai: { provider: openai, targets: ["${replay.origin}"], headers: { authorization: "Bearer upstream-key" } }
routes:
  - { path: /anthropic/once/, upstream: anthropic, strip_prefix: true, auth: key, limits: [once] }
  - { path: /anthropic/, upstream: anthropic, strip_prefix: true, auth: key, limits: [tokens] }
  - { path: /v1/once/, upstream: openai, strip_prefix: true, auth: key, limits: [once] }
  - { path: /v1/, upstream: openai, auth: key, limits: [tokens] }
`))
t.teardown(() => proxy.stop())

const access = (pred: (l: Record<string, unknown>) => boolean) => proxy.waitLog((l) => l.msg === 'access' && pred(l))

t.test('@anthropic-ai/sdk messages.stream: parsed, metered as Anthropic reported', async (t) => {
  const client = new Anthropic({
    baseURL: proxy.url('/anthropic'), apiKey: 'sk-claude', maxRetries: 0,
    defaultHeaders: { 'x-replay': 'sdk-anthropic', 'x-replay-file': 'anthropic/messages-sse.sse' },
  })
  const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 1024, messages: [{ role: 'user', content: 'What is 1+1? Answer with just the number.' }] })
  const msg = await stream.finalMessage()
  t.equal(msg.usage.input_tokens, 20)
  t.equal(msg.usage.output_tokens, 5)
  t.ok(msg.content.length > 0, 'the SDK assembled the content')
  const seen = replay.seen.get('sdk-anthropic')!
  t.equal(seen.headers['x-api-key'], 'upstream-key', "the upstream got the proxy's key, not the client's")
  t.equal(seen.headers['accept-encoding'], 'identity')
  t.ok(typeof seen.headers['anthropic-version'] === 'string', 'anthropic-version passed through')
  t.match(await access((l) => l.key_id === 'claude-app'), {
    tokens_prompt: 20, tokens_completion: 5, tokens_total: 25, tokens_source: 'reported', model: 'claude-sonnet-4-5-20250929',
  })
})

t.test('@anthropic-ai/sdk: 401 and 429 from the proxy in Anthropic\'s shape', async (t) => {
  const bad = new Anthropic({ baseURL: proxy.url('/anthropic'), apiKey: 'sk-unknown', maxRetries: 0 })
  const e401 = await bad.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e)
  t.ok(e401 instanceof Anthropic.AuthenticationError, 'AuthenticationError')
  t.match(e401.error, { type: 'error', error: { type: 'authentication_error', code: 'LEAKY_UNAUTHORIZED' } })

  const once = new Anthropic({
    baseURL: proxy.url('/anthropic/once'), apiKey: 'sk-claude-once', maxRetries: 0,
    defaultHeaders: { 'x-replay': 'sdk-anthropic-once', 'x-replay-file': 'anthropic/messages-sse.sse' },
  })
  await once.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }).finalMessage()
  const e429 = await once.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e)
  t.ok(e429 instanceof Anthropic.RateLimitError, 'RateLimitError')
  t.match(e429.error, { type: 'error', error: { type: 'rate_limit_error', code: 'LEAKY_RATE_LIMITED' } })
  t.match(String(e429.headers.get('retry-after')), /^[1-9]\d*$/)
})

t.test('openai responses.create stream: parsed, metered from response.completed', async (t) => {
  const client = new OpenAI({
    baseURL: proxy.url('/v1'), apiKey: 'sk-resp', maxRetries: 0,
    defaultHeaders: { 'x-replay': 'sdk-responses', 'x-replay-file': 'openai/responses-sse.sse' },
  })
  const stream = await client.responses.create({ model: 'gpt-5.5', input: 'Reply with exactly: pong', stream: true })
  let text = ''
  let usage: { input_tokens: number; output_tokens: number } | undefined
  for await (const ev of stream) {
    if (ev.type === 'response.output_text.delta') text += ev.delta
    if (ev.type === 'response.completed') usage = ev.response.usage ?? undefined
  }
  t.ok(text.length > 0, 'text deltas arrived')
  t.same(usage && [usage.input_tokens, usage.output_tokens], [11, 5])
  t.match(await access((l) => l.key_id === 'resp-app'), { tokens_prompt: 11, tokens_completion: 5, tokens_total: 16, tokens_source: 'reported' })
})

t.test('openai responses: 401 and 429 in OpenAI\'s shape', async (t) => {
  const bad = new OpenAI({ baseURL: proxy.url('/v1'), apiKey: 'sk-unknown', maxRetries: 0 })
  const e401 = await bad.responses.create({ model: 'gpt-5.5', input: 'x' }).catch((e) => e)
  t.ok(e401 instanceof OpenAI.AuthenticationError)
  t.equal(e401.code, 'LEAKY_UNAUTHORIZED')
  const once = new OpenAI({
    baseURL: proxy.url('/v1/once/v1'), apiKey: 'sk-resp-once', maxRetries: 0,
    defaultHeaders: { 'x-replay': 'sdk-responses-once', 'x-replay-file': 'openai/responses-sse.sse' },
  })
  const s = await once.responses.create({ model: 'gpt-5.5', input: 'x', stream: true })
  for await (const _ of s) { /* drain */ }
  const e429 = await once.responses.create({ model: 'gpt-5.5', input: 'x' }).catch((e) => e)
  t.ok(e429 instanceof OpenAI.RateLimitError)
  t.equal(e429.code, 'LEAKY_RATE_LIMITED')
})
