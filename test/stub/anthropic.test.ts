// Anthropic's Messages API, through the official @anthropic-ai/sdk pointed straight at the stub and with undici for
// the wire: JSON and SSE (the event sequence Anthropic sends, ping included), usage exact against the product's own
// prompt reader and tokenizer, the request checks the real API makes, errors in Anthropic's shape, and the knobs.
import t from 'tap'
import Anthropic from '@anthropic-ai/sdk'
import { performance } from 'node:perf_hooks'
import { request } from 'undici'
import { countTokens } from '../../src/llm/tokenizer.js'
import { promptTokens, readPrompt } from '../../src/llm/prompt.js'
import { StubServer, type StubRequestEvent } from '../../src/stub/server.js'

const stub = new StubServer({ seed: 21 })
const port = await stub.listen(0)
const origin = `http://127.0.0.1:${port}`
t.teardown(() => stub.close())

const seen: StubRequestEvent[] = []
stub.on('request', (r: StubRequestEvent) => seen.push(r))

const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: origin, maxRetries: 0 })
const messages = [{ role: 'user' as const, content: 'Tell me about leaky buckets, please.' }]

interface Event {
  event: string
  data: Record<string, any>
}

/** `event: NAME\ndata: JSON` blocks, checking that each event's name is its data's type. */
function parseSse(raw: string): Event[] {
  return raw.split('\n\n').filter(Boolean).map((block) => {
    const m = /^event: (\S+)\ndata: (.*)$/s.exec(block)
    if (m === null) throw new Error('not an event: ' + block)
    const data = JSON.parse(m[2])
    if (data.type !== m[1]) throw new Error(`event ${m[1]} carries type ${data.type}`)
    return { event: m[1], data }
  })
}

function post(body: unknown, headers: Record<string, string> = {}) {
  return request(`${origin}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-raw', 'anthropic-version': '2023-06-01', ...headers },
    body: JSON.stringify(body),
  })
}

t.test('messages.create: text and usage are exact', async (t) => {
  const body = { model: 'claude-sonnet-4-5', max_tokens: 30, system: 'You are terse.', messages }
  const m = await client.messages.create(body)
  t.equal(m.type, 'message')
  t.equal(m.role, 'assistant')
  t.equal(m.model, 'claude-sonnet-4-5')
  t.match(m.id, /^msg_01[A-Za-z0-9]{22}$/)
  t.equal(m.content.length, 1)
  const block = m.content[0]
  t.equal(block.type, 'text')
  const text = block.type === 'text' ? block.text : ''
  t.equal(countTokens(text), 30, 'max_tokens tokens of text')
  t.equal(m.stop_reason, 'max_tokens')
  t.equal(m.stop_sequence, null)
  t.equal(m.usage.input_tokens, promptTokens(readPrompt('anthropic-messages', body, '/v1/messages')), "the proxy's estimate of the prompt, to the token")
  t.equal(m.usage.output_tokens, countTokens(text))
  t.equal(m.usage.cache_read_input_tokens, 0)
  t.equal(m.usage.cache_creation_input_tokens, 0)
  const last = seen[seen.length - 1]
  t.equal(last.url, '/v1/messages', 'the SDK really hit the stub')
  // this SDK sends its apiKey as `Authorization: Bearer`, older ones as x-api-key: the API takes both
  t.ok(last.headers['x-api-key'] === 'sk-ant-test' || last.headers.authorization === 'Bearer sk-ant-test', 'the key arrived')
  t.type(last.headers['anthropic-version'], 'string')
})

t.test('end_turn when the text ends before max_tokens (x-stub-tokens); tools count in the prompt', async (t) => {
  const tools = [{ name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } } }]
  const body = { model: 'claude-haiku-4-5', max_tokens: 1000, messages, tools }
  // like every stub API, the answer is max_tokens long unless x-stub-tokens says otherwise
  const m = await client.messages.create(body, { headers: { 'x-stub-tokens': '16' } })
  t.equal(m.stop_reason, 'end_turn')
  t.equal(m.usage.output_tokens, 16)
  t.equal(m.usage.input_tokens, promptTokens(readPrompt('anthropic-messages', body)))
  t.ok(m.usage.input_tokens > promptTokens(readPrompt('anthropic-messages', { ...body, tools: undefined })), 'the tool definitions are part of it')
})

t.test('SSE: the events Anthropic sends, in order, and usage that adds up', async (t) => {
  const body = { model: 'claude-sonnet-4-5', max_tokens: 6, stream: true, messages }
  const res = await post(body)
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/event-stream/)
  const events = parseSse(await res.body.text())
  t.same(events.map((e) => e.event), [
    'message_start', 'content_block_start', 'ping',
    ...Array(6).fill('content_block_delta'),
    'content_block_stop', 'message_delta', 'message_stop',
  ])
  const prompt = promptTokens(readPrompt('anthropic-messages', body))
  const start = events[0].data.message
  t.match(start, { type: 'message', role: 'assistant', content: [], stop_reason: null, model: 'claude-sonnet-4-5' })
  t.match(start.usage, { input_tokens: prompt, output_tokens: 1, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 })
  t.same(events[1].data.content_block, { type: 'text', text: '' })
  const deltas = events.filter((e) => e.event === 'content_block_delta')
  t.ok(deltas.every((e) => e.data.index === 0 && e.data.delta.type === 'text_delta'))
  const text = deltas.map((e) => e.data.delta.text).join('')
  t.equal(countTokens(text), 6)
  const delta = events[events.length - 2].data
  t.same(delta.delta, { stop_reason: 'max_tokens', stop_sequence: null })
  t.equal(delta.usage.output_tokens, 6, 'message_delta: the cumulative output count')
  t.equal(delta.usage.input_tokens, prompt, 'input counts repeated, as the current API does')
  const json = (await (await post({ ...body, stream: false })).body.json()) as { content: Array<{ text: string }>; usage: { output_tokens: number } }
  t.equal(json.content[0].text, text, 'the stream carries the same text as the JSON answer')
})

t.test('messages.stream: the SDK assembles the message and its usage', async (t) => {
  const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 12, messages })
  const types = new Set<string>()
  let text = ''
  stream.on('streamEvent', (e) => types.add(e.type))
  stream.on('text', (d) => (text += d))
  const m = await stream.finalMessage()
  t.same([...types].sort(), ['content_block_delta', 'content_block_start', 'content_block_stop', 'message_delta', 'message_start', 'message_stop'])
  t.equal(m.content[0].type === 'text' ? m.content[0].text : '', text)
  t.equal(m.usage.output_tokens, 12)
  t.equal(m.stop_reason, 'max_tokens')
})

t.test('reasoning: thinking.budget_tokens (or x-stub-thoughts) counted in output_tokens, never sent', async (t) => {
  const body = { model: 'claude-sonnet-4-5', max_tokens: 2000, thinking: { type: 'enabled' as const, budget_tokens: 1024 }, messages }
  const m = await client.messages.create(body, { headers: { 'x-stub-tokens': '8' } })
  const text = m.content[0].type === 'text' ? m.content[0].text : ''
  t.equal(m.content.length, 1, 'one text block')
  t.equal(countTokens(text), 8)
  t.equal(m.usage.output_tokens, 8 + 1024)
  const events = parseSse(await (await post({ model: 'claude-sonnet-4-5', max_tokens: 4, stream: true, messages }, { 'x-stub-thoughts': '50' })).body.text())
  t.equal(events[events.length - 2].data.usage.output_tokens, 4 + 50)
})

t.test('the checks the real API makes, answered in its error shape', async (t) => {
  const noVersion = await request(`${origin}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'k' }, body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 5, messages }) })
  t.equal(noVersion.statusCode, 400)
  t.match(await noVersion.body.json(), { type: 'error', error: { type: 'invalid_request_error', message: /anthropic-version/ }, request_id: /^req_/ })
  const noMax = await post({ model: 'claude-sonnet-4-5', messages })
  t.equal(noMax.statusCode, 400)
  t.match(await noMax.body.json(), { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } })
  const noMessages = await post({ model: 'claude-sonnet-4-5', max_tokens: 5 })
  t.equal(noMessages.statusCode, 400)
  t.match(await noMessages.body.json(), { error: { message: /^messages/ } })
  const get = await request(`${origin}/v1/messages`)
  t.equal(get.statusCode, 405)
  await get.body.dump()
})

t.test('x-stub-error: Anthropic error types through the SDK, Retry-After on 429', async (t) => {
  const cases = [
    [429, Anthropic.RateLimitError, 'rate_limit_error'],
    [401, Anthropic.AuthenticationError, 'authentication_error'],
    [529, Anthropic.InternalServerError, 'overloaded_error'],
    [500, Anthropic.InternalServerError, 'api_error'],
  ] as const
  for (const [status, cls, type] of cases) {
    const e = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 5, messages }, { headers: { 'x-stub-error': String(status) } }).catch((err) => err)
    t.ok(e instanceof cls, `${status}: ${cls.name}`)
    t.equal(e.status, status)
    t.match(e.error, { type: 'error', error: { type, message: String } }, `${status}: ${type}`)
    if (status === 429) t.equal(e.headers.get('retry-after'), '1')
  }
})

t.test('pacing: TTFT before message_start, tokens per second between deltas', async (t) => {
  const start = performance.now()
  const res = await post({ model: 'claude-sonnet-4-5', max_tokens: 10, stream: true, messages }, { 'x-stub-ttft-ms': '150', 'x-stub-tps': '100' })
  const it = res.body[Symbol.asyncIterator]()
  const first = String((await it.next()).value)
  const firstAt = performance.now()
  t.ok(firstAt - start >= 150, `first bytes after ${(firstAt - start).toFixed(1)} ms`)
  t.match(first, /^event: message_start\n/)
  let rest = ''
  for (let r = await it.next(); r.done !== true; r = await it.next()) rest += String(r.value)
  const spread = performance.now() - firstAt
  t.ok(spread >= 90, `9 more tokens at 100/s took ${spread.toFixed(1)} ms`)
  t.match(rest, /event: message_stop\n.*\n\n$/)
})

t.test('cut: part of the stream, no message_delta, a broken body', async (t) => {
  const res = await post({ model: 'claude-sonnet-4-5', max_tokens: 10, stream: true, messages }, { 'x-stub-error': 'cut' })
  let text = ''
  const err = await (async () => {
    try {
      for await (const c of res.body) text += c.toString()
      return null
    } catch (e) {
      return e
    }
  })()
  t.ok(err, 'the client sees a broken body')
  t.match(text, /^event: message_start\n/)
  t.notMatch(text, /message_delta|message_stop/)
})
