import t from 'tap'
import { createMeter } from '../../src/llm/usage.js'
import { countTokens } from '../../src/llm/tokenizer.js'
import { GEMINI_ARRAY, GEMINI_JSON, GEMINI_SSE, GEMINI_TEXTS } from '../fixtures/llm/responses.js'
import { every, feed, pieces } from '../fixtures/llm/feed.js'

const opts = { stream: true, stripUsageChunk: false, model: 'gemini-2.5-flash', promptTokens: 9 }

t.test('JSON: usageMetadata, thoughts folded into completion', async (t) => {
  const m = createMeter('gemini', { ...opts, stream: false, model: 'gemini-2.5-pro', promptTokens: 8 })
  const wire = Buffer.from(GEMINI_JSON)
  t.ok(feed(m, every(wire, 100)).equals(wire))
  t.same(m.usage(), { prompt: 8, completion: 1013, thoughts: 1004, cached: 2, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 1021, model: 'gemini-2.5-pro', source: 'reported' })
})

t.test('alt=sse stream: the last event has the totals, at every split point', async (t) => {
  const wire = Buffer.from(GEMINI_SSE.join(''))
  let bad = 0
  for (let i = 0; i <= wire.length; i++) {
    const m = createMeter('gemini', opts)
    const out = feed(m, pieces(wire, [i]))
    const u = m.usage()
    if (!out.equals(wire) || u.source !== 'reported' || u.completion !== 38 || u.total !== 47 || u.cached !== 3 || u.thoughts !== 21) bad++
  }
  t.equal(bad, 0)
  const m = createMeter('gemini', opts)
  feed(m, [wire])
  t.same(m.usage(), { prompt: 9, completion: 38, thoughts: 21, cached: 3, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 47, model: 'gemini-2.5-flash', source: 'reported' })
})

t.test('a cut stream counts the candidate texts sent, keeps the reasoning reported so far', async (t) => {
  const wire = Buffer.from(GEMINI_SSE.slice(0, 3).join('') + GEMINI_SSE[3].slice(0, 40))
  const m = createMeter('gemini', opts)
  feed(m, every(wire, 33), true)
  const text = countTokens(GEMINI_TEXTS[0] + GEMINI_TEXTS[1])
  t.same(m.usage(), { prompt: 9, completion: text + 21, thoughts: 21, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 9 + text + 21, model: 'gemini-2.5-flash', source: 'counted' })
})

t.test('streamed JSON array (no alt=sse): read as JSON, last element wins', async (t) => {
  for (const stream of [false, true]) {
    const m = createMeter('gemini', { ...opts, stream, model: 'gemini-2.0-flash', promptTokens: 5 })
    const wire = Buffer.from(GEMINI_ARRAY)
    t.ok(feed(m, every(wire, 20)).equals(wire))
    t.same(m.usage(), { prompt: 5, completion: 4, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 9, model: 'gemini-2.0-flash', source: 'reported' }, `stream=${stream}`)
  }
})

t.test('a cut JSON array counts the texts received', async (t) => {
  const m = createMeter('gemini', { ...opts, stream: false, promptTokens: 5 })
  const at = GEMINI_ARRAY.indexOf(' there, friend') + 7
  feed(m, [Buffer.from(GEMINI_ARRAY.slice(0, at))], true)
  const u = m.usage()
  t.equal(u.source, 'counted')
  t.equal(u.completion, countTokens('Hello there,'))
})

t.test('an error event mid-stream carries no usage', async (t) => {
  const wire = GEMINI_SSE[1] + 'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n'
  const m = createMeter('gemini', opts)
  feed(m, [Buffer.from(wire)])
  // usage was seen (running) and the stream ended: what the upstream said last stands
  t.equal(m.usage().source, 'reported')
  t.equal(m.usage().completion, 4 + 21)
})
