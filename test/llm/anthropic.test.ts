// The Anthropic Messages meter: JSON and SSE usage with prompt caching (cache reads and writes folded into the
// prompt, kept apart as cached / cacheWrite, total = prompt + completion), message_delta's cumulative output count
// with and without the input counts repeated, bytes forwarded as they came at every split, and what a stream that
// never reached message_delta is charged: the delivered text, never message_start's placeholder output count.
import t from 'tap'
import { createMeter } from '../../src/llm/usage.js'
import { countTokens } from '../../src/llm/tokenizer.js'
import { every, feed } from '../fixtures/llm/feed.js'

const opts = { stream: true, stripUsageChunk: false, model: 'claude-sonnet-4-5', promptTokens: 40 }
const MODEL = 'claude-sonnet-4-5-20250929'

const JSON_BODY = JSON.stringify({
  model: MODEL, id: 'msg_01XFDUDYJgAACzvnptvVoYEL', type: 'message', role: 'assistant',
  content: [{ type: 'text', text: 'Hello there, a leaky bucket drains steadily.' }],
  stop_reason: 'end_turn', stop_sequence: null,
  usage: { input_tokens: 21, cache_creation_input_tokens: 1800, cache_read_input_tokens: 300, cache_creation: { ephemeral_5m_input_tokens: 1800, ephemeral_1h_input_tokens: 0 }, output_tokens: 57, service_tier: 'standard' },
})

const DELTAS = ['Hello', ' there', ',', ' a', ' leaky', ' bucket', ' drains', '.']

function ev(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`
}

/** An Anthropic stream; `repeatInput`: message_delta repeats the input counts (current API) or has output only. */
function stream(repeatInput: boolean, upTo = Infinity): string {
  const usage = { input_tokens: 21, cache_creation_input_tokens: 1800, cache_read_input_tokens: 300, output_tokens: 1 }
  const parts = [
    ev('message_start', { type: 'message_start', message: { model: MODEL, id: 'msg_01', type: 'message', role: 'assistant', content: [], stop_reason: null, stop_sequence: null, usage } }),
    ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    'event: ping\ndata: {"type": "ping"}\n\n',
    ...DELTAS.map((d) => ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: d } })),
    ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
    ev('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: repeatInput ? { ...usage, output_tokens: 57 } : { output_tokens: 57 } }),
    ev('message_stop', { type: 'message_stop' }),
  ]
  return parts.slice(0, upTo).join('')
}

const REPORTED = { prompt: 21 + 1800 + 300, completion: 57, thoughts: 0, cached: 300, cacheWrite: 1800, toolPrompt: 0, audio: 0, total: 21 + 1800 + 300 + 57, model: MODEL, source: 'reported' }

t.test('JSON: cache reads and writes are prompt, kept apart; total = prompt + completion', async (t) => {
  const m = createMeter('anthropic-messages', { ...opts, stream: false })
  const wire = Buffer.from(JSON_BODY)
  t.ok(feed(m, every(wire, 29)).equals(wire), 'bytes as they came')
  t.notOk(m.rewrites)
  t.same(m.usage(), REPORTED)
})

t.test('SSE: message_start input + message_delta cumulative output, at every split, both API versions', async (t) => {
  for (const repeat of [true, false]) {
    const wire = Buffer.from(stream(repeat))
    for (const size of [1, 5, 64, 333, wire.length]) {
      const m = createMeter('anthropic-messages', opts)
      t.ok(feed(m, every(wire, size)).equals(wire), `repeat ${repeat}, size ${size}: byte-exact`)
      t.same(m.usage(), REPORTED, `repeat ${repeat}, size ${size}`)
    }
  }
})

t.test('a stream cut before message_delta: the input reported, the delivered text counted', async (t) => {
  const wire = Buffer.from(stream(true, 3 + 5))
  const m = createMeter('anthropic-messages', opts)
  feed(m, [wire], true)
  const text = DELTAS.slice(0, 5).join('')
  t.same(m.usage(), { ...REPORTED, completion: countTokens(text), total: 2121 + countTokens(text), source: 'counted' })
})

t.test('a stream that ends cleanly on an error event (overloaded mid-stream): the delivered text, not output 1', async (t) => {
  const wire = Buffer.from(stream(true, 3 + 6) + ev('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }))
  const m = createMeter('anthropic-messages', opts)
  t.ok(feed(m, [wire]).equals(wire))
  const text = DELTAS.slice(0, 6).join('')
  const u = m.usage()
  t.equal(u.completion, countTokens(text), "what the client received, not message_start's placeholder count of 1")
  t.equal(u.prompt, 2121, 'the input message_start reported')
  t.equal(u.total, 2121 + countTokens(text))
  t.equal(u.source, 'counted')
})

t.test('thinking deltas are counted as thoughts when the stream is cut', async (t) => {
  const wire = Buffer.from(stream(true, 1) +
    ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } }) +
    ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Let me think about buckets' } }))
  const m = createMeter('anthropic-messages', opts)
  feed(m, [wire], true)
  const u = m.usage()
  t.equal(u.thoughts, countTokens('Let me think about buckets'))
  t.equal(u.completion, u.thoughts)
})

t.test('negative or mistyped usage fields: unknown, the estimate stays', async (t) => {
  const m = createMeter('anthropic-messages', { ...opts, stream: false })
  feed(m, [Buffer.from(JSON_BODY.replace('"output_tokens":57', '"output_tokens":-3'))])
  t.equal(m.usage().source, 'unknown')
  t.equal(m.unknown, 'invalid')
})
