// The OpenAI surface, through the official SDK pointed straight at the stub: chat (JSON and SSE with usage),
// legacy completions, embeddings, models, and Qwen's compatible mode. Usage must be exact against the product's
// own tokenizer and prompt reader.
import t from 'tap'
import OpenAI from 'openai'
import { request } from 'undici'
import { countTokens } from '../../src/llm/tokenizer.js'
import { promptTokens, readPrompt } from '../../src/llm/prompt.js'
import { StubServer, type StubRequestEvent } from '../../src/stub/server.js'

const stub = new StubServer({ seed: 11 })
const port = await stub.listen(0)
const origin = `http://127.0.0.1:${port}`
t.teardown(() => stub.close())

const seen: StubRequestEvent[] = []
stub.on('request', (r: StubRequestEvent) => seen.push(r))

const client = new OpenAI({ apiKey: 'sk-test', baseURL: `${origin}/v1`, maxRetries: 0 })
const messages = [
  { role: 'system' as const, content: 'You are terse.' },
  { role: 'user' as const, content: 'Tell me about leaky buckets, please.' },
]

t.test('chat, JSON: text and usage are exact', async (t) => {
  const body = { model: 'gpt-4o-mini', messages, max_tokens: 40 }
  const r = await client.chat.completions.create(body)
  const text = r.choices[0].message.content ?? ''
  t.equal(r.object, 'chat.completion')
  t.equal(r.model, 'gpt-4o-mini')
  t.equal(r.choices[0].message.role, 'assistant')
  t.equal(r.choices[0].finish_reason, 'length', 'stopped at max_tokens')
  t.equal(countTokens(text), 40, 'max_tokens tokens of text')
  t.equal(r.usage?.completion_tokens, countTokens(text))
  t.equal(r.usage?.prompt_tokens, promptTokens(readPrompt('openai-chat', body, '/v1/chat/completions')))
  t.equal(r.usage?.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens)
  t.match(r.id, /^chatcmpl-[A-Za-z0-9]{29}$/)
  const last = seen[seen.length - 1]
  t.equal(last.url, '/v1/chat/completions', 'the SDK really hit the stub')
  t.equal(last.headers.authorization, 'Bearer sk-test')
  t.same(JSON.parse(last.body.toString()), body, "'request' carries the body as sent")
})

t.test('chat without max_tokens: 16 tokens and finish_reason stop', async (t) => {
  const r = await client.chat.completions.create({ model: 'gpt-4o', messages })
  t.equal(r.usage?.completion_tokens, 16)
  t.equal(r.choices[0].finish_reason, 'stop')
  t.equal(r.model, 'gpt-4o')
})

t.test('chat, SSE with include_usage: deltas add up to the usage', async (t) => {
  const body = { model: 'gpt-4o-mini', messages, max_completion_tokens: 25, stream: true as const, stream_options: { include_usage: true } }
  const stream = await client.chat.completions.create(body)
  let text = ''
  let chunks = 0
  let roles = 0
  let finish: string | null = null
  let usage: OpenAI.CompletionUsage | null | undefined
  let usageNulls = 0
  for await (const chunk of stream) {
    chunks++
    if (chunk.usage === null) usageNulls++
    if (chunk.choices.length === 0) {
      usage = chunk.usage
      continue
    }
    const c = chunk.choices[0]
    if (c.delta.role) roles++
    text += c.delta.content ?? ''
    if (c.finish_reason) finish = c.finish_reason
  }
  t.equal(roles, 1, 'the first chunk carries the role')
  t.equal(finish, 'length')
  t.equal(chunks, 1 + 25 + 1 + 1, 'role chunk, one chunk per token, finish chunk, usage chunk')
  t.equal(usageNulls, chunks - 1, '"usage": null on every chunk but the last')
  t.equal(usage?.completion_tokens, countTokens(text), 'usage = countTokens(concatenated deltas)')
  t.equal(usage?.completion_tokens, 25)
  t.equal(usage?.prompt_tokens, promptTokens(readPrompt('openai-chat', body, '/v1/chat/completions')))
  const nonStream = await client.chat.completions.create({ ...body, stream: false, stream_options: undefined })
  t.equal(nonStream.choices[0].message.content, text, 'streamed and JSON answers to one prompt say the same')
})

t.test('chat, SSE without include_usage: no usage field at all, [DONE] last', async (t) => {
  const res = await request(`${origin}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages, stream: true, max_tokens: 3 }),
  })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/event-stream/)
  const raw = await res.body.text()
  const events = raw.split('\n\n').filter(Boolean)
  t.equal(events.length, 1 + 3 + 1 + 1)
  t.equal(events[events.length - 1], 'data: [DONE]')
  t.notMatch(raw, /"usage"/)
  t.ok(events.every((e) => e.startsWith('data: ')))
})

t.test('reasoning tokens from x-stub-thoughts are billed but not sent', async (t) => {
  const r = await client.chat.completions.create({ model: 'o4-mini', messages, max_tokens: 10 }, { headers: { 'x-stub-thoughts': '7' } })
  t.equal(countTokens(r.choices[0].message.content ?? ''), 10)
  t.equal(r.usage?.completion_tokens, 17)
  t.equal(r.usage?.completion_tokens_details?.reasoning_tokens, 7)
})

t.test('x-stub-tokens sets the length, capped by max_tokens', async (t) => {
  const a = await client.chat.completions.create({ model: 'gpt-4o-mini', messages }, { headers: { 'x-stub-tokens': '3' } })
  t.equal(a.usage?.completion_tokens, 3)
  t.equal(a.choices[0].finish_reason, 'stop')
  const b = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 5 }, { headers: { 'x-stub-tokens': '50' } })
  t.equal(b.usage?.completion_tokens, 5)
  t.equal(b.choices[0].finish_reason, 'length')
})

t.test('legacy completions, JSON and SSE', async (t) => {
  const body = { model: 'gpt-3.5-turbo-instruct', prompt: 'Once upon a time', max_tokens: 9 }
  const r = await client.completions.create(body)
  t.equal(r.object, 'text_completion')
  t.equal(countTokens(r.choices[0].text), 9)
  t.equal(r.usage?.completion_tokens, 9)
  t.equal(r.usage?.prompt_tokens, promptTokens(readPrompt('openai-completions', body)))
  const stream = await client.completions.create({ ...body, stream: true, stream_options: { include_usage: true } })
  let text = ''
  let usage: OpenAI.CompletionUsage | undefined
  for await (const c of stream) {
    text += c.choices[0]?.text ?? ''
    if (c.usage) usage = c.usage
  }
  t.equal(text, r.choices[0].text)
  t.equal(usage?.completion_tokens, 9)
})

t.test('embeddings: deterministic unit vectors, base64 (SDK default) and float agree', async (t) => {
  const input = ['first text', 'second text']
  const a = await client.embeddings.create({ model: 'text-embedding-3-small', input })
  t.equal(a.data.length, 2)
  t.equal(a.data[0].embedding.length, 1536)
  t.equal(seen[seen.length - 1].url, '/v1/embeddings')
  t.equal(JSON.parse(seen[seen.length - 1].body.toString()).encoding_format, 'base64', 'the SDK asked for base64 and decoded it')
  const norm = Math.sqrt(a.data[0].embedding.reduce((s, x) => s + x * x, 0))
  t.ok(Math.abs(norm - 1) < 1e-5, 'unit length')
  const f = await client.embeddings.create({ model: 'text-embedding-3-small', input, encoding_format: 'float' })
  t.same(f.data[1].embedding, a.data[1].embedding, 'float and base64 carry the same numbers')
  t.notSame(a.data[0].embedding.slice(0, 8), a.data[1].embedding.slice(0, 8), 'different inputs, different vectors')
  const expected = promptTokens(readPrompt('openai-embeddings', { input }))
  t.equal(a.usage.prompt_tokens, expected)
  t.equal(a.usage.total_tokens, expected)
  const d = await client.embeddings.create({ model: 'text-embedding-3-large', input: 'x', dimensions: 256 })
  t.equal(d.data[0].embedding.length, 256)
})

t.test('models: list and retrieve', async (t) => {
  const list = await client.models.list()
  const ids = list.data.map((m) => m.id)
  t.ok(ids.includes('gpt-4o-mini'))
  const m = await client.models.retrieve('ft:gpt-4o-mini:org:x')
  t.equal(m.id, 'ft:gpt-4o-mini:org:x')
})

t.test('Qwen compatible mode through the OpenAI SDK', async (t) => {
  const qwen = new OpenAI({ apiKey: 'sk-dash', baseURL: `${origin}/compatible-mode/v1`, maxRetries: 0 })
  const body = { model: 'qwen-plus', messages, max_tokens: 12 }
  const r = await qwen.chat.completions.create(body)
  t.equal(r.model, 'qwen-plus')
  t.equal(r.usage?.completion_tokens, countTokens(r.choices[0].message.content ?? ''))
  t.equal(r.usage?.prompt_tokens, promptTokens(readPrompt('openai-chat', body)))
  t.equal(r.system_fingerprint, null)
  t.equal(seen[seen.length - 1].url, '/compatible-mode/v1/chat/completions')
  const stream = await qwen.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } })
  let text = ''
  let usage: OpenAI.CompletionUsage | null | undefined
  for await (const c of stream) {
    text += c.choices[0]?.delta.content ?? ''
    if (c.choices.length === 0) usage = c.usage
  }
  t.equal(text, r.choices[0].message.content)
  t.equal(usage?.completion_tokens, 12)
  const err = await qwen.chat.completions.create(body, { headers: { 'x-stub-error': '429' } }).catch((e: unknown) => e)
  t.ok(err instanceof OpenAI.RateLimitError)
  t.match((err as InstanceType<typeof OpenAI.APIError>).error, { code: 'rate_limit_exceeded' })
})

t.test('errors reach the SDK in OpenAI shape', async (t) => {
  const err = await client.chat.completions.create({ model: 'x', messages }, { headers: { 'x-stub-error': '429' } }).catch((e: unknown) => e)
  t.ok(err instanceof OpenAI.RateLimitError)
  const e = err as InstanceType<typeof OpenAI.APIError>
  t.equal(e.status, 429)
  t.equal(e.headers?.get('retry-after'), '1')
  t.match(e.error, { message: String, type: 'requests', code: 'rate_limit_exceeded' })
  const bad = await request(`${origin}/v1/chat/completions`, { method: 'POST', body: '{not json' })
  t.equal(bad.statusCode, 400)
  t.match(await bad.body.json(), { error: { type: 'invalid_request_error' } })
  const wrongMethod = await request(`${origin}/v1/chat/completions`)
  t.equal(wrongMethod.statusCode, 405)
  await wrongMethod.body.dump()
})
