// The finish reason a meter reads from real provider answers (../shared/recorded): the span's
// gen_ai.response.finish_reasons. Read at every split of the wire, as the bytes arrive from a socket.
import t from 'tap'
import { createMeter } from '../../src/llm/usage.js'
import type { ApiShape } from '../../src/llm/prompt.js'
import { recording } from '../helpers/replay.js'
import { every, feed } from '../fixtures/llm/feed.js'

const CASES: Array<[file: string, shape: ApiShape, stream: boolean, finish: string]> = [
  ['openai/chat-json-text.json', 'openai-chat', false, 'stop'],
  ['openai/chat-json-toolcall.json', 'openai-chat', false, 'tool_calls'],
  ['openai/chat-sse-usage-text.sse', 'openai-chat', true, 'stop'],
  ['openai/chat-sse-usage-toolcall.sse', 'openai-chat', true, 'tool_calls'],
  ['openai/chat-sse-usage-n3.sse', 'openai-chat', true, 'stop'],
  ['openai/chat-sse-nousage-text.sse', 'openai-chat', true, 'stop'],
  ['openai/responses-sse.sse', 'openai-responses', true, 'completed'],
  ['anthropic/messages-sse.sse', 'anthropic-messages', true, 'end_turn'],
  ['gemini/stream-text.sse', 'gemini', true, 'STOP'],
  ['gemini/generate-text-thoughts.json', 'gemini', false, 'STOP'],
  ['gemini/stream-array-thoughts.json', 'gemini', true, 'STOP'],
  ['qwen/compat-reasoning.sse', 'openai-chat', true, 'stop'],
]

for (const [file, shape, stream, finish] of CASES) {
  t.test(`${file}: ${finish}`, async (t) => {
    const wire = recording(file)
    for (const size of [1, 7, 64, wire.length]) {
      for (const strip of [false, true]) {
        const m = createMeter(shape, { stream, stripUsageChunk: strip, model: 'm', promptTokens: 10 })
        feed(m, every(wire, size))
        t.equal(m.finish, finish, `size ${size}, strip ${strip}`)
      }
    }
  })
}

t.test('a stream cut before its last event has no finish reason; the reason read is the last one written', async (t) => {
  const wire = recording('openai/chat-sse-usage-text.sse').toString()
  const cut = wire.slice(0, wire.indexOf('"finish_reason":"stop"'))
  const m = createMeter('openai-chat', { stream: true, stripUsageChunk: false, model: 'm', promptTokens: 10 })
  m.write(Buffer.from(cut.slice(0, cut.lastIndexOf('\n\n') + 2)))
  t.equal(m.finish, '', 'no event said why the answer ended')
  const m2 = createMeter('openai-chat', { stream: true, stripUsageChunk: false, model: 'm', promptTokens: 10 })
  feed(m2, [Buffer.from('data: {"model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"length"}]}\n\n' +
    'data: {"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\ndata: [DONE]\n\n')])
  t.equal(m2.finish, 'length', 'read from the deferred chunk before the usage chunk')
})

t.test('an API with no finish reason (a pass-through route) reports none', async (t) => {
  const m = createMeter('other', { stream: false, stripUsageChunk: false, model: 'm', promptTokens: 0 })
  feed(m, [Buffer.from('{"finish_reason":"stop"}')])
  t.equal(m.finish, '')
})
