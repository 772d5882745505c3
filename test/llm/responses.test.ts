// The OpenAI Responses meter: JSON and SSE usage (cached input, reasoning, the provider's total), usage only from a
// terminal event (response.completed, response.incomplete, response.failed — never the `"usage":null` of
// response.created), bytes forwarded as they came at every split, and a stream cut before its terminal event
// charged the delivered text plus the estimated prompt.
import t from 'tap'
import { createMeter } from '../../src/llm/usage.js'
import { countTokens } from '../../src/llm/tokenizer.js'
import { every, feed } from '../fixtures/llm/feed.js'

const opts = { stream: true, stripUsageChunk: false, model: 'o4-mini', promptTokens: 33 }
const MODEL = 'o4-mini-2025-04-16'
const USAGE = { input_tokens: 1200, input_tokens_details: { cached_tokens: 1024 }, output_tokens: 300, output_tokens_details: { reasoning_tokens: 256 }, total_tokens: 1500 }
const REPORTED = { prompt: 1200, completion: 300, thoughts: 256, cached: 1024, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 1500, model: MODEL, source: 'reported' }
const DELTAS = ['A', ' leaky', ' bucket', ' drains', ' at', ' a', ' steady', ' pace', '.']

function response(status: string, usage: unknown): Record<string, unknown> {
  return { id: 'resp_1', object: 'response', created_at: 1, status, model: MODEL, output: [], usage }
}

let seq = 0
function ev(type: string, fields: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...fields, sequence_number: seq++ })}\n\n`
}

function stream(terminal: 'response.completed' | 'response.incomplete' | 'response.failed' | null, deltas = DELTAS.length): string {
  seq = 0
  let s = ev('response.created', { response: response('in_progress', null) }) + ev('response.in_progress', { response: response('in_progress', null) })
  for (const d of DELTAS.slice(0, deltas)) s += ev('response.output_text.delta', { item_id: 'msg_1', output_index: 1, content_index: 0, delta: d })
  if (terminal !== null) s += ev(terminal, { response: response(terminal.slice('response.'.length), USAGE) })
  return s
}

t.test('JSON: usage with cached input and reasoning, the provider total charged', async (t) => {
  const m = createMeter('openai-responses', { ...opts, stream: false })
  const wire = Buffer.from(JSON.stringify(response('completed', USAGE)))
  t.ok(feed(m, every(wire, 17)).equals(wire))
  t.same(m.usage(), REPORTED)
})

t.test('SSE: usage from the terminal event, whichever it is, at every split', async (t) => {
  for (const terminal of ['response.completed', 'response.incomplete', 'response.failed'] as const) {
    const wire = Buffer.from(stream(terminal))
    for (const size of [1, 9, 100, wire.length]) {
      const m = createMeter('openai-responses', opts)
      t.ok(feed(m, every(wire, size)).equals(wire), `${terminal}, size ${size}: byte-exact`)
      t.same(m.usage(), REPORTED, `${terminal}, size ${size}`)
    }
  }
})

t.test("a stream cut before its terminal event: response.created's null usage is no usage; the text is counted", async (t) => {
  const m = createMeter('openai-responses', opts)
  feed(m, [Buffer.from(stream(null, 5))], true)
  const text = countTokens(DELTAS.slice(0, 5).join(''))
  t.same(m.usage(), { prompt: 33, completion: text, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 33 + text, model: MODEL, source: 'counted' })
})
