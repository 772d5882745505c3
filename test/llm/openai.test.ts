import t from 'tap'
import { createMeter } from '../../src/llm/usage.js'
import { countTokens } from '../../src/llm/tokenizer.js'
import {
  OPENAI_CHAT_JSON, OPENAI_COMPLETIONS_STREAM, OPENAI_DELTAS, OPENAI_USAGE_EVENT, openaiStreamEvents,
} from '../fixtures/llm/responses.js'
import { every, feed, pieces } from '../fixtures/llm/feed.js'

const opts = { stream: true, stripUsageChunk: false, model: 'gpt-4o', promptTokens: 19 }

t.test('chat JSON: usage read at end, bytes forwarded as they came', async (t) => {
  const m = createMeter('openai-chat', { ...opts, stream: false })
  const wire = Buffer.from(OPENAI_CHAT_JSON)
  const chunks = every(wire, 37)
  for (const c of chunks) t.equal(m.write(c), c, 'same Buffer back, nothing held')
  t.equal(m.end().length, 0)
  t.same(m.usage(), { prompt: 1117, completion: 46, thoughts: 0, cached: 1024, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 1163, model: 'gpt-4o-2024-08-06', source: 'reported' })
  t.notOk(m.rewrites)
})

t.test('embeddings JSON: prompt-only usage', async (t) => {
  const m = createMeter('openai-embeddings', { ...opts, stream: false, model: 'text-embedding-3-small', promptTokens: 0 })
  const body = '{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,-0.0028842222]}],' +
    '"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}'
  feed(m, [Buffer.from(body)])
  t.same(m.usage(), { prompt: 8, completion: 0, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 8, model: 'text-embedding-3-small', source: 'reported' })
})

t.test('a JSON body past the copy cap: usage found in the tail', async (t) => {
  const m = createMeter('openai-embeddings', { ...opts, stream: false, model: 'text-embedding-3-large', promptTokens: 0 })
  const vec = '[' + Array.from({ length: 3072 }, (_, i) => (Math.sin(i) / 10).toFixed(9)).join(',') + ']'
  const items: string[] = []
  for (let i = 0; i < 160; i++) items.push('{"object":"embedding","index":' + i + ',"embedding":' + vec + '}')
  const body = Buffer.from('{"object":"list","data":[' + items.join(',') + '],"model":"text-embedding-3-large","usage":{"prompt_tokens":1234,"total_tokens":1234}}')
  t.ok(body.length > 4 << 20, 'body is larger than the 4 MiB copy')
  const out = feed(m, every(body, 65536))
  t.ok(out.equals(body))
  t.same(m.usage(), { prompt: 1234, completion: 0, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 1234, model: 'text-embedding-3-large', source: 'reported' })
})

t.test('chat stream with usage: reported, every chunk returned as given', async (t) => {
  const wire = Buffer.from(openaiStreamEvents().join(''))
  for (const size of [1, 7, 64, 1000, wire.length]) {
    const m = createMeter('openai-chat', opts)
    const chunks = every(wire, size)
    const out: Buffer[] = []
    for (const c of chunks) {
      const r = m.write(c)
      if (r !== c) t.fail('not the same Buffer')
      out.push(r)
    }
    out.push(m.end())
    t.ok(Buffer.concat(out).equals(wire), `size ${size}: byte-exact`)
    t.same(m.usage(), { prompt: 19, completion: 10, thoughts: 2, cached: 4, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 29, model: 'gpt-4o-2024-08-06', source: 'reported' })
  }
})

t.test('stripping: the client gets the stream minus the usage-only chunk, byte for byte, at every split', async (t) => {
  const events = openaiStreamEvents()
  const wire = Buffer.from(events.join(''))
  const expected = Buffer.from(events.filter((e) => e !== OPENAI_USAGE_EVENT).join(''))
  t.ok(expected.length < wire.length)
  t.ok(createMeter('openai-chat', { ...opts, stripUsageChunk: true }).rewrites, 'a stripping meter says it rewrites')
  let bad = 0
  for (let i = 0; i <= wire.length; i++) {
    const m = createMeter('openai-chat', { ...opts, stripUsageChunk: true })
    const out = feed(m, pieces(wire, [i]))
    const u = m.usage()
    if (!out.equals(expected) || u.source !== 'reported' || u.total !== 29) bad++
  }
  t.equal(bad, 0, 'every split point')
})

t.test('stripping holds back nothing but an incomplete event', async (t) => {
  const events = openaiStreamEvents()
  const m = createMeter('openai-chat', { ...opts, stripUsageChunk: true })
  // a chunk of whole events comes back as the same Buffer
  const whole = Buffer.from(events[0] + events[1])
  t.equal(m.write(whole), whole)
  // half an event: nothing yet; its rest: the whole event at once
  const ev = Buffer.from(events[2])
  t.equal(m.write(ev.subarray(0, 10)).length, 0)
  t.equal(m.write(ev.subarray(10)).toString(), events[2])
  // the usage event alone: swallowed; [DONE] passes
  t.equal(m.write(Buffer.from(OPENAI_USAGE_EVENT)).length, 0)
  t.equal(m.write(Buffer.from('data: [DONE]\n\n')).toString(), 'data: [DONE]\n\n')
  t.equal(m.end().length, 0)
})

t.test('a usage chunk that also has choices is not stripped', async (t) => {
  const ev = 'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
  const m = createMeter('openai-chat', { ...opts, stripUsageChunk: true })
  t.equal(feed(m, [Buffer.from(ev)]).toString(), ev)
  t.equal(m.usage().total, 4)
})

t.test('a cut stream counts the delivered deltas', async (t) => {
  const events = openaiStreamEvents()
  // cut after the 4th content delta, in the middle of the next event
  const sent = events.slice(0, 5).join('')
  const wire = Buffer.from(sent + events[5].slice(0, 30))
  const m = createMeter('openai-chat', { ...opts, stripUsageChunk: true })
  const out = feed(m, every(wire, 50), true)
  t.equal(out.toString(), sent, 'the incomplete event was never forwarded')
  const delivered = OPENAI_DELTAS.slice(0, 5).join('')
  t.same(m.usage(), {
    prompt: 19, completion: countTokens(delivered), thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 19 + countTokens(delivered),
    model: 'gpt-4o-2024-08-06', source: 'counted',
  })
})

t.test('a stream without usage that ends normally is counted', async (t) => {
  const events = openaiStreamEvents().filter((e) => e !== OPENAI_USAGE_EVENT)
  const m = createMeter('openai-chat', opts)
  feed(m, [Buffer.from(events.join(''))])
  const u = m.usage()
  t.equal(u.source, 'counted')
  t.equal(u.completion, countTokens(OPENAI_DELTAS.join('')))
})

t.test('cut after the usage chunk: the report stands', async (t) => {
  const events = openaiStreamEvents()
  const m = createMeter('openai-chat', opts)
  feed(m, [Buffer.from(events.slice(0, -1).join(''))], true)
  t.equal(m.usage().source, 'reported')
  t.equal(m.usage().total, 29)
})

t.test('legacy completions stream: text deltas counted', async (t) => {
  const m = createMeter('openai-completions', { ...opts, model: 'gpt-3.5-turbo-instruct' })
  feed(m, [Buffer.from(OPENAI_COMPLETIONS_STREAM.join(''))])
  const u = m.usage()
  t.equal(u.source, 'counted')
  t.equal(u.completion, countTokens('This is a test'))
  t.equal(u.model, 'gpt-3.5-turbo-instruct')
})

t.test('tool calls and reasoning_content are delivered text', async (t) => {
  const ev = (d: object) => 'data: ' + JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'qwen-plus', choices: [{ index: 0, delta: d }] }) + '\n\n'
  const wire = ev({ reasoning_content: 'Think about the weather' }) +
    ev({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '' } }] }) +
    ev({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }) + ev({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] })
  const m = createMeter('openai-chat', { ...opts, model: 'qwen-plus' })
  feed(m, [Buffer.from(wire)], true)
  const u = m.usage()
  const thoughts = countTokens('Think about the weather')
  t.equal(u.thoughts, thoughts)
  t.equal(u.completion, countTokens('get_weather{"city":"Paris"}') + thoughts)
})

t.test('a cut JSON body counts the text it delivered', async (t) => {
  const m = createMeter('openai-chat', { ...opts, stream: false })
  const at = OPENAI_CHAT_JSON.indexOf('field.') + 5
  feed(m, [Buffer.from(OPENAI_CHAT_JSON.slice(0, at))], true)
  const u = m.usage()
  t.equal(u.source, 'counted')
  t.equal(u.completion, countTokens('The image shows a wooden boardwalk path running through a lush green field'))
})

t.test('other shapes pass through with zero usage', async (t) => {
  const m = createMeter('other', opts)
  const b = Buffer.from('data: {"usage":{"prompt_tokens":5}}\n\n')
  t.equal(m.write(b), b)
  t.equal(m.end().length, 0)
  t.same(m.usage(), { prompt: 0, completion: 0, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 0, model: 'gpt-4o', source: 'counted' })
})

t.test('audio tokens (gpt-4o-audio): inside prompt and completion, counted apart; the total as reported', async (t) => {
  const m = createMeter('openai-chat', { ...opts, stream: false, model: 'gpt-4o-audio-preview' })
  const body = '{"id":"chatcmpl-a","object":"chat.completion","model":"gpt-4o-audio-preview-2024-12-17","choices":[{"index":0,' +
    '"message":{"role":"assistant","content":null,"audio":{"id":"audio_1","data":"UklGRg==","transcript":"Hi"}},"finish_reason":"stop"}],' +
    '"usage":{"prompt_tokens":40,"completion_tokens":120,"total_tokens":160,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":25},' +
    '"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":100,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}'
  feed(m, [Buffer.from(body)])
  t.same(m.usage(), { prompt: 40, completion: 120, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 125, total: 160, model: 'gpt-4o-audio-preview-2024-12-17', source: 'reported' })
})
