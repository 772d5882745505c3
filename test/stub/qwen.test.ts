// DashScope's native text-generation API with undici: JSON in "text" and "message" result formats, and SSE
// (X-DashScope-SSE: enable) with cumulative usage and both incremental_output semantics.
import t from 'tap'
import { request } from 'undici'
import { countTokens } from '../../src/llm/tokenizer.js'
import { promptTokens, readPrompt } from '../../src/llm/prompt.js'
import { StubServer } from '../../src/stub/server.js'

const stub = new StubServer({ seed: 3 })
const port = await stub.listen(0)
const PATH = '/api/v1/services/aigc/text-generation/generation'
const url = `http://127.0.0.1:${port}${PATH}`
t.teardown(() => stub.close())

const messages = [{ role: 'user', content: 'What is a token bucket?' }]

async function post(body: unknown, headers: Record<string, string> = {}) {
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-dash', ...headers }, body: JSON.stringify(body) })
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

interface Event {
  id: string
  comment: string
  event: string
  data: { output: { text?: string; finish_reason?: string; choices?: Array<{ message: { content: string }; finish_reason: string }> }; usage: { input_tokens: number; output_tokens: number; total_tokens: number }; request_id: string }
}

function parseSse(raw: string): Event[] {
  return raw.split('\n\n').filter(Boolean).map((block) => {
    const lines = block.split('\n')
    return {
      id: lines[0].replace(/^id:/, ''),
      comment: lines[2],
      event: lines[1].replace(/^event:/, ''),
      data: JSON.parse(lines[3].replace(/^data:/, '')),
    }
  })
}

t.test('JSON, result_format text', async (t) => {
  const body = { model: 'qwen-plus', input: { messages }, parameters: { max_tokens: 20 } }
  const r = await post(body)
  t.equal(r.status, 200)
  const j = JSON.parse(r.text)
  t.equal(countTokens(j.output.text), 20)
  t.equal(j.output.finish_reason, 'length')
  t.equal(j.usage.output_tokens, 20)
  t.equal(j.usage.input_tokens, promptTokens(readPrompt('qwen-native', body)))
  t.equal(j.usage.total_tokens, j.usage.input_tokens + 20)
  t.match(j.request_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/)
})

t.test('JSON, result_format message, prompt input', async (t) => {
  const body = { model: 'qwen-max', input: { prompt: 'Say something.' }, parameters: { result_format: 'message' } }
  const j = JSON.parse((await post(body)).text)
  t.equal(j.output.choices[0].message.role, 'assistant')
  t.equal(countTokens(j.output.choices[0].message.content), 16)
  t.equal(j.output.choices[0].finish_reason, 'stop')
  t.equal(j.usage.input_tokens, promptTokens(readPrompt('qwen-native', body)))
})

t.test('SSE, default (non-incremental): each event holds the whole text so far', async (t) => {
  const body = { model: 'qwen-plus', input: { messages }, parameters: { max_tokens: 6 } }
  const r = await post(body, { 'X-DashScope-SSE': 'enable' })
  t.match(r.headers['content-type'], /^text\/event-stream/)
  const events = parseSse(r.text)
  t.equal(events.length, 7, 'one event per token and a final one')
  t.same(events.map((e) => e.id), ['1', '2', '3', '4', '5', '6', '7'])
  t.ok(events.every((e) => e.event === 'result'))
  t.ok(events.every((e) => e.comment === ':HTTP_STATUS/200'), 'the status comment line DashScope sends')
  t.same(events.map((e) => e.data.output.finish_reason), ['null', 'null', 'null', 'null', 'null', 'null', 'length'])
  t.same(events.map((e) => e.data.usage.output_tokens), [1, 2, 3, 4, 5, 6, 6], 'usage is cumulative')
  for (let i = 0; i < 6; i++) t.equal(countTokens(events[i].data.output.text!), i + 1)
  const full = events[6].data.output.text!
  t.equal(JSON.parse((await post(body)).text).output.text, full, 'the final event carries the same text as the JSON answer')
})

t.test('SSE, incremental_output: deltas that concatenate to the text', async (t) => {
  const body = { model: 'qwen-plus', input: { messages }, parameters: { max_tokens: 8, incremental_output: true, result_format: 'message' } }
  const events = parseSse((await post(body, { 'X-DashScope-SSE': 'enable' })).text)
  const text = events.map((e) => e.data.output.choices![0].message.content).join('')
  t.equal(countTokens(text), 8)
  t.equal(events[events.length - 1].data.output.choices![0].message.content, '', 'the closing event adds nothing')
  t.equal(events[events.length - 1].data.usage.output_tokens, countTokens(text))
  t.equal(new Set(events.map((e) => e.data.request_id)).size, 1, 'one request id throughout')
})

t.test('errors in DashScope shape', async (t) => {
  const r = await post({ model: 'qwen-plus', input: { messages } }, { 'x-stub-error': '429' })
  t.equal(r.status, 429)
  t.equal(r.headers['retry-after'], '1')
  t.match(JSON.parse(r.text), { code: 'Throttling.RateQuota', message: String, request_id: String })
  const e = await post({ model: 'qwen-plus', input: { messages } }, { 'x-stub-error': '500' })
  t.match(JSON.parse(e.text), { code: 'InternalError' })
})
