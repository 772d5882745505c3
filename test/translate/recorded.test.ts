// Recorded real provider answers (../shared/recorded) through the usage meter and the OpenAI translator, in the
// pieces a server writes them and byte by byte: every text delta, the finish reason and the usage survive the
// translation, and the client's usage is what the provider reported.
import t from 'tap'
import { recording, ssePieces } from '../helpers/replay.js'
import { createMeter, type UsageMeter } from '../../src/llm/usage.js'
import { AnthropicToOpenAI } from '../../src/translate/anthropic-response.js'
import { GeminiToOpenAI } from '../../src/translate/gemini-response.js'
import type { ResponseTranslator } from '../../src/translate/openai-out.js'
import type { ApiShape } from '../../src/llm/prompt.js'

interface Out {
  text: string
  finish: string[]
  usage: Record<string, any> | null
  done: boolean
  chunks: Array<Record<string, any>>
  errors: Array<Record<string, any>>
}

function parseOut(bytes: string): Out {
  const out: Out = { text: '', finish: [], usage: null, done: false, chunks: [], errors: [] }
  for (const ev of bytes.split('\n\n')) {
    if (ev === '') continue
    if (!ev.startsWith('data: ')) throw new Error(`not an OpenAI SSE event: ${JSON.stringify(ev)}`)
    const data = ev.slice(6)
    if (data === '[DONE]') {
      out.done = true
      continue
    }
    const c = JSON.parse(data)
    if (c.error) {
      out.errors.push(c.error)
      continue
    }
    out.chunks.push(c)
    if (c.usage) out.usage = c.usage
    for (const ch of c.choices) {
      out.text += ch.delta?.content ?? ''
      if (ch.finish_reason) out.finish.push(ch.finish_reason)
    }
  }
  return out
}

function run(shape: ApiShape, make: (m: UsageMeter) => ResponseTranslator, pieces: Buffer[]): { out: Out; meter: UsageMeter } {
  const meter = createMeter(shape, { stream: true, stripUsageChunk: false, model: 'm', promptTokens: 0 })
  const tr = make(meter)
  let s = ''
  for (const p of pieces) s += tr.write(meter.write(p)).toString()
  const held = meter.end()
  if (held.length > 0) s += tr.write(held).toString()
  s += tr.end().toString()
  return { out: parseOut(s), meter }
}

function bytewise(b: Buffer): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < b.length; i++) out.push(b.subarray(i, i + 1))
  return out
}

const opts = (meter: UsageMeter) => ({ stream: true, includeUsage: true, model: 'asked', id: 'chatcmpl-x', meter })

/** The text a native stream carries, read independently of the translator. */
function nativeText(sse: Buffer, pick: (ev: any) => string): string {
  let text = ''
  for (const line of sse.toString().split('\n')) {
    if (!line.startsWith('data:')) continue
    text += pick(JSON.parse(line.slice(5)))
  }
  return text
}

const anthropicText = (ev: any) => (ev.type === 'content_block_delta' && typeof ev.delta?.text === 'string' ? ev.delta.text : '')
const geminiText = (ev: any) => (ev.candidates ?? []).flatMap((c: any) => c.content?.parts ?? []).filter((p: any) => !p.thought && typeof p.text === 'string').map((p: any) => p.text).join('')

for (const split of ['events', 'bytes'] as const) {
  t.test(`anthropic/messages-sse.sse, split by ${split}`, async (t) => {
    const rec = recording('anthropic/messages-sse.sse')
    const { out } = run('anthropic-messages', (m) => new AnthropicToOpenAI(opts(m)), split === 'events' ? ssePieces(rec) : bytewise(rec))
    t.equal(out.text, nativeText(rec, anthropicText), 'every text delta, in order')
    t.same(out.finish, ['stop'], 'end_turn → stop, once')
    t.same(out.usage, { prompt_tokens: 20, completion_tokens: 5, total_tokens: 25, prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } })
    t.equal(out.chunks[0].choices[0].delta.role, 'assistant', 'the first chunk names the role')
    t.equal(out.chunks[0].id, 'msg_018E1hg8GoVTGEKQY3ovMcSJ', 'the upstream id')
    t.equal(out.chunks[0].model, 'claude-sonnet-4-5-20250929', 'the model that answered')
    t.ok(out.done, 'ends with [DONE]')
    t.same(out.errors, [])
  })

  for (const file of ['gemini/stream-text.sse', 'gemini/stream-thoughts.sse']) {
    t.test(`${file}, split by ${split}`, async (t) => {
      const rec = recording(file)
      const { out, meter } = run('gemini', (m) => new GeminiToOpenAI(opts(m)), split === 'events' ? ssePieces(rec) : bytewise(rec))
      t.equal(out.text, nativeText(rec, geminiText), 'every text part (thoughts are billed, not shown)')
      t.same(out.finish, ['stop'])
      const u = meter.usage()
      t.equal(u.source, 'reported')
      t.equal(out.usage?.prompt_tokens, u.prompt)
      t.equal(out.usage?.completion_tokens, u.completion)
      t.equal(out.usage?.total_tokens, u.total)
      t.equal(out.usage?.completion_tokens_details.reasoning_tokens, u.thoughts)
      t.ok(out.done)
    })
  }
}

t.test('gemini/stream-text.sse numbers are the recording\'s', async (t) => {
  const { out } = run('gemini', (m) => new GeminiToOpenAI(opts(m)), ssePieces(recording('gemini/stream-text.sse')))
  t.match(out.usage, { prompt_tokens: 13, completion_tokens: 8, total_tokens: 21 })
  t.equal(out.chunks[0].id, 'w1peaMz6INOvnvgPgYfPiQY')
})

t.test('gemini JSON answer (generate-text-thoughts.json)', async (t) => {
  const rec = recording('gemini/generate-text-thoughts.json')
  const meter = createMeter('gemini', { stream: false, stripUsageChunk: false, model: 'm', promptTokens: 0 })
  const tr = new GeminiToOpenAI({ stream: false, includeUsage: false, model: 'asked', id: 'x', meter })
  let s = tr.write(meter.write(rec.subarray(0, 100))).toString() + tr.write(meter.write(rec.subarray(100))).toString()
  meter.end()
  s += tr.end().toString()
  const c = JSON.parse(s)
  const native = JSON.parse(rec.toString())
  t.equal(c.object, 'chat.completion')
  t.equal(c.choices[0].message.content, native.candidates[0].content.parts.filter((p: any) => !p.thought).map((p: any) => p.text).join(''))
  const u = native.usageMetadata
  t.equal(c.usage.prompt_tokens, u.promptTokenCount)
  t.equal(c.usage.completion_tokens, (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0))
  t.equal(c.usage.total_tokens, u.totalTokenCount)
})

t.test('a cut stream ends with the usage counted so far and an OpenAI error event', async (t) => {
  const rec = recording('anthropic/messages-sse.sse')
  const pieces = ssePieces(rec)
  const meter = createMeter('anthropic-messages', { stream: true, stripUsageChunk: false, model: 'm', promptTokens: 0 })
  const tr = new AnthropicToOpenAI(opts(meter))
  let s = ''
  // up to the text delta, not message_delta: the upstream's final count never came
  for (const p of pieces.slice(0, 4)) s += tr.write(meter.write(p)).toString()
  s += tr.fail('LEAKY_UPSTREAM_RESET').toString()
  const out = parseOut(s)
  t.equal(out.text, '2')
  t.equal(out.errors.length, 1)
  t.equal(out.errors[0].code, 'LEAKY_UPSTREAM_RESET')
  t.equal(meter.usage().source, 'counted')
  t.equal(out.usage?.completion_tokens, meter.usage().completion, 'usage counted from what was delivered')
  t.equal(out.usage?.prompt_tokens, 20, 'the prompt count message_start reported')
  t.notOk(out.done, 'no [DONE] after an error')
  t.ok(s.endsWith('\n\n') && s.lastIndexOf('"error"') > s.lastIndexOf('"usage"'), 'the error event is the last')
})

t.test('anthropic tool use stream: the input JSON is passed as it came, malformed included', async (t) => {
  const events = [
    { type: 'message_start', message: { id: 'msg_1', model: 'claude-x', usage: { input_tokens: 10, output_tokens: 1 } } },
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Let me look.' } },
    { type: 'content_block_stop', index: 0 },
    { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: {} } },
    { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city": "Par' } },
    { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: 'is", oops' } },
    { type: 'content_block_stop', index: 1 },
    { type: 'message_delta', delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 20 } },
    { type: 'message_stop' },
  ]
  const sse = Buffer.from(events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join(''))
  const { out } = run('anthropic-messages', (m) => new AnthropicToOpenAI(opts(m)), ssePieces(sse))
  const calls = out.chunks.flatMap((c) => c.choices.flatMap((ch: any) => ch.delta.tool_calls ?? []))
  t.equal(calls[0].id, 'toolu_1')
  t.equal(calls[0].function.name, 'get_weather')
  t.equal(calls.map((c: any) => c.function.arguments).join(''), '{"city": "Paris", oops', 'the arguments string as sent')
  t.ok(calls.every((c: any) => c.index === 0))
  t.same(out.finish, ['tool_calls'])
  t.match(out.usage, { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 })
})

t.test('gemini function call stream → one tool call chunk, finish tool_calls', async (t) => {
  const ev = { candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }] }, finishReason: 'STOP' }], usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 5, totalTokenCount: 12 }, modelVersion: 'gemini-2.5-flash' }
  const { out } = run('gemini', (m) => new GeminiToOpenAI(opts(m)), [Buffer.from(`data: ${JSON.stringify(ev)}\r\n\r\n`)])
  const calls = out.chunks.flatMap((c) => c.choices.flatMap((ch: any) => ch.delta.tool_calls ?? []))
  t.same(calls, [{ index: 0, id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }])
  t.same(out.finish, ['tool_calls'])
  t.match(out.usage, { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 })
})
