// OpenAI's Responses API, through the official openai SDK pointed straight at the stub and with undici for the
// wire: JSON and SSE (the typed events OpenAI sends, sequence numbers included), usage exact against the product's
// own prompt reader and tokenizer, reasoning, response.incomplete at max_output_tokens, errors and the knobs.
import t from 'tap'
import OpenAI from 'openai'
import { performance } from 'node:perf_hooks'
import { request } from 'undici'
import { countTokens } from '../../src/llm/tokenizer.js'
import { promptTokens, readPrompt } from '../../src/llm/prompt.js'
import { StubServer, type StubRequestEvent } from '../../src/stub/server.js'

const stub = new StubServer({ seed: 17 })
const port = await stub.listen(0)
const origin = `http://127.0.0.1:${port}`
t.teardown(() => stub.close())

const seen: StubRequestEvent[] = []
stub.on('request', (r: StubRequestEvent) => seen.push(r))

const client = new OpenAI({ apiKey: 'sk-test', baseURL: `${origin}/v1`, maxRetries: 0 })
const input = [{ role: 'user' as const, content: 'Tell me about leaky buckets, please.' }]

interface Event {
  event: string
  data: Record<string, any>
}

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
  return request(`${origin}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-raw', ...headers }, body: JSON.stringify(body) })
}

t.test('responses.create: text and usage are exact', async (t) => {
  const body = { model: 'gpt-4.1-mini', instructions: 'You are terse.', input, max_output_tokens: 30 }
  const r = await client.responses.create(body)
  t.equal(r.object, 'response')
  t.match(r.id, /^resp_[0-9a-f]{50}$/)
  t.equal(r.model, 'gpt-4.1-mini')
  t.equal(r.instructions, 'You are terse.')
  t.equal(r.max_output_tokens, 30)
  t.equal(r.status, 'incomplete', 'stopped at max_output_tokens')
  t.same(r.incomplete_details, { reason: 'max_output_tokens' })
  t.equal(countTokens(r.output_text), 30, "the SDK's output_text")
  t.equal(r.usage?.input_tokens, promptTokens(readPrompt('openai-responses', body, '/v1/responses')), "the proxy's estimate of the prompt, to the token")
  t.equal(r.usage?.output_tokens, 30)
  t.equal(r.usage?.total_tokens, r.usage!.input_tokens + 30)
  t.equal(r.usage?.output_tokens_details.reasoning_tokens, 0)
  t.equal(r.usage?.input_tokens_details.cached_tokens, 0)
  const last = seen[seen.length - 1]
  t.equal(last.url, '/v1/responses', 'the SDK really hit the stub')
  t.equal(last.headers.authorization, 'Bearer sk-test')
})

t.test('a string input, no limit: completed, 16 tokens', async (t) => {
  const r = await client.responses.create({ model: 'gpt-4o-mini', input: 'Say something.' })
  t.equal(r.status, 'completed')
  t.equal(r.incomplete_details, null)
  t.equal(r.usage?.output_tokens, 16)
  t.equal(r.output.length, 1)
  t.match(r.output[0], { type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', annotations: [] }] })
  t.equal(r.usage?.input_tokens, promptTokens(readPrompt('openai-responses', { input: 'Say something.' })))
})

t.test('SSE: the events OpenAI sends, in order, numbered, and usage only at the end', async (t) => {
  const body = { model: 'gpt-4o-mini', input, stream: true, max_output_tokens: 40 }
  const res = await post(body, { 'x-stub-tokens': '5' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/event-stream/)
  const events = parseSse(await res.body.text())
  t.same(events.map((e) => e.event), [
    'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
    ...Array(5).fill('response.output_text.delta'),
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed',
  ])
  t.same(events.map((e) => e.data.sequence_number), events.map((_, i) => i), 'sequence_number counts from 0')
  t.match(events[0].data.response, { status: 'in_progress', output: [], usage: null })
  const msgId = events[2].data.item.id
  t.match(msgId, /^msg_[0-9a-f]{50}$/)
  const deltas = events.filter((e) => e.event === 'response.output_text.delta')
  t.ok(deltas.every((e) => e.data.item_id === msgId && e.data.output_index === 0 && e.data.content_index === 0))
  const text = deltas.map((e) => e.data.delta).join('')
  t.equal(countTokens(text), 5)
  t.equal(events[9].data.text, text, 'output_text.done carries the whole text')
  const done = events[events.length - 1].data.response
  t.equal(done.status, 'completed')
  t.equal(done.output[0].content[0].text, text)
  t.same(done.usage, {
    input_tokens: promptTokens(readPrompt('openai-responses', body)), input_tokens_details: { cached_tokens: 0 },
    output_tokens: 5, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: done.usage.input_tokens + 5,
  })
  t.notOk(events.slice(0, -1).some((e) => e.data.response?.usage != null), 'no usage before the terminal event')
})

t.test('responses.create stream through the SDK; response.incomplete at max_output_tokens', async (t) => {
  const stream = await client.responses.create({ model: 'gpt-4o-mini', input, stream: true, max_output_tokens: 7 })
  let text = ''
  let terminal: OpenAI.Responses.ResponseStreamEvent | null = null
  for await (const ev of stream) {
    if (ev.type === 'response.output_text.delta') text += ev.delta
    if (ev.type === 'response.completed' || ev.type === 'response.incomplete') terminal = ev
  }
  t.equal(terminal?.type, 'response.incomplete')
  const r = (terminal as OpenAI.Responses.ResponseIncompleteEvent).response
  t.equal(r.incomplete_details?.reason, 'max_output_tokens')
  t.equal(countTokens(text), 7)
  t.equal(r.usage?.output_tokens, 7)
})

t.test('reasoning (x-stub-thoughts): a reasoning item first, reasoning_tokens in the usage', async (t) => {
  const r = await client.responses.create({ model: 'o4-mini', input }, { headers: { 'x-stub-thoughts': '64', 'x-stub-tokens': '10' } })
  t.equal(r.output.length, 2)
  t.match(r.output[0], { type: 'reasoning', summary: [] })
  t.match(r.output[0].id, /^rs_[0-9a-f]{50}$/)
  t.equal(countTokens(r.output_text), 10)
  t.equal(r.usage?.output_tokens, 74, 'output includes reasoning')
  t.equal(r.usage?.output_tokens_details.reasoning_tokens, 64)
  t.equal(r.usage?.total_tokens, r.usage!.input_tokens + 74)
  const events = parseSse(await (await post({ model: 'o4-mini', input, stream: true }, { 'x-stub-thoughts': '64', 'x-stub-tokens': '3' })).body.text())
  t.same(events.slice(2, 5).map((e) => [e.event, e.data.output_index, e.data.item?.type]), [
    ['response.output_item.added', 0, 'reasoning'], ['response.output_item.done', 0, 'reasoning'], ['response.output_item.added', 1, 'message'],
  ])
  t.equal(events[events.length - 1].data.response.usage.output_tokens_details.reasoning_tokens, 64)
})

t.test("a request without input is refused as OpenAI does; x-stub-error in OpenAI's shape", async (t) => {
  const res = await post({ model: 'gpt-4o-mini' })
  t.equal(res.statusCode, 400)
  t.match(await res.body.json(), { error: { type: 'invalid_request_error', message: /input/ } })
  const e = await client.responses.create({ model: 'gpt-4o-mini', input: 'x' }, { headers: { 'x-stub-error': '429' } }).catch((err) => err)
  t.ok(e instanceof OpenAI.RateLimitError)
  t.equal(e.code, 'rate_limit_exceeded')
  t.equal(e.headers.get('retry-after'), '1')
})

t.test('pacing: TTFT before response.created, tokens per second between deltas', async (t) => {
  const start = performance.now()
  const res = await post({ model: 'gpt-4o-mini', input, stream: true }, { 'x-stub-ttft-ms': '150', 'x-stub-tps': '100', 'x-stub-tokens': '10' })
  const it = res.body[Symbol.asyncIterator]()
  const first = String((await it.next()).value)
  const firstAt = performance.now()
  t.ok(firstAt - start >= 150, `first bytes after ${(firstAt - start).toFixed(1)} ms`)
  t.match(first, /^event: response\.created\n/)
  let rest = ''
  for (let r = await it.next(); r.done !== true; r = await it.next()) rest += String(r.value)
  const spread = performance.now() - firstAt
  t.ok(spread >= 90, `9 more tokens at 100/s took ${spread.toFixed(1)} ms`)
  t.match(rest, /event: response\.completed\n.*\n\n$/)
})

t.test('cut: part of the stream, no terminal event, a broken body', async (t) => {
  const res = await post({ model: 'gpt-4o-mini', input, stream: true }, { 'x-stub-error': 'cut', 'x-stub-tokens': '10' })
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
  t.match(text, /^event: response\.created\n/)
  t.notMatch(text, /response\.completed/)
})
