import t from 'tap'
import { createMeter } from '../../src/llm/usage.js'
import { countTokens } from '../../src/llm/tokenizer.js'
import { QWEN_FINAL, QWEN_JSON, QWEN_PIECES, qwenSse } from '../fixtures/llm/responses.js'
import { every, feed, pieces } from '../fixtures/llm/feed.js'

const opts = { stream: true, stripUsageChunk: false, model: 'qwen-plus', promptTokens: 22 }

t.test('native JSON: input/output tokens and reasoning', async (t) => {
  const m = createMeter('qwen-native', { ...opts, stream: false })
  const wire = Buffer.from(QWEN_JSON)
  t.ok(feed(m, every(wire, 10)).equals(wire))
  t.same(m.usage(), { prompt: 22, completion: 16, thoughts: 3, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 38, model: 'qwen-plus', source: 'reported' })
})

for (const incremental of [false, true]) {
  t.test(`X-DashScope-SSE stream (incremental_output ${incremental}): final usage, every split point`, async (t) => {
    const wire = Buffer.from(qwenSse(incremental).join(''))
    let bad = 0
    for (let i = 0; i <= wire.length; i++) {
      const m = createMeter('qwen-native', opts)
      const out = feed(m, pieces(wire, [i]))
      const u = m.usage()
      if (!out.equals(wire) || u.source !== 'reported' || u.completion !== QWEN_FINAL.completion || u.total !== QWEN_FINAL.total) bad++
    }
    t.equal(bad, 0)
  })

  t.test(`cut stream (incremental_output ${incremental}) counts the text delivered once`, async (t) => {
    const ev = qwenSse(incremental)
    const m = createMeter('qwen-native', opts)
    feed(m, every(Buffer.from(ev.slice(0, 3).join('') + ev[3].slice(0, 50)), 16), true)
    const text = QWEN_PIECES.slice(0, 3).join('')
    t.same(m.usage(), { prompt: 22, completion: countTokens(text), thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 22 + countTokens(text), model: 'qwen-plus', source: 'counted' })
  })
}

t.test('cut cumulative stream with reasoning_content: thoughts counted apart', async (t) => {
  const ev = (content: string, reasoning: string) => 'id:1\nevent:result\n:HTTP_STATUS/200\ndata:' + JSON.stringify({
    output: { choices: [{ message: { content, reasoning_content: reasoning, role: 'assistant' }, finish_reason: 'null' }] },
    usage: { total_tokens: 30, output_tokens: 8, input_tokens: 22 }, request_id: 'r',
  }) + '\n\n'
  const wire = ev('', 'The user') + ev('', 'The user asks') + ev('Hi', 'The user asks') + ev('Hi there', 'The user asks')
  const m = createMeter('qwen-native', opts)
  feed(m, [Buffer.from(wire)], true)
  const u = m.usage()
  t.equal(u.thoughts, countTokens('The user asks'))
  t.equal(u.completion, countTokens('Hi there') + countTokens('The user asks'))
})
