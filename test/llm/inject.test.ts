import t from 'tap'
import { injectIncludeUsage, wantsInjection } from '../../src/llm/inject.js'

t.test('no stream_options: one member spliced into the raw bytes, nothing else touched', async (t) => {
  const raw = Buffer.from('{\n  "model": "gpt-4o-mini",\n  "stream": true,\n  "temperature": 1.0,\n  "seed": 12345678901234567890,\n  "messages": [{"role": "user", "content": "hi \\u00e9"}]\n}\n')
  const body = JSON.parse(raw.toString())
  const out = injectIncludeUsage(body, raw)!
  t.equal(out.toString(), raw.toString().replace(/\n}\n$/, ',"stream_options":{"include_usage":true}\n}\n'))
  const parsed = JSON.parse(out.toString())
  t.same(parsed, { ...body, stream_options: { include_usage: true } })
  t.match(out.toString(), '"temperature": 1.0', 'number formatting kept')
})

t.test('without raw bytes: the parsed body re-serialised with the option added', async (t) => {
  const body = { model: 'qwen-plus', messages: [{ role: 'user', content: 'x' }], stream: true, tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }
  const out = JSON.parse(injectIncludeUsage(body)!.toString())
  t.same(out, { ...body, stream_options: { include_usage: true } })
  t.same(Object.keys(out), ['model', 'messages', 'stream', 'tools', 'stream_options'], 'key order kept')
})

t.test('an existing stream_options keeps its other fields and its place', async (t) => {
  const body = { model: 'm', stream: true, stream_options: { include_obfuscation: false, include_usage: false }, n: 2 }
  const out = JSON.parse(injectIncludeUsage(body, Buffer.from(JSON.stringify(body)))!.toString())
  t.same(out, { model: 'm', stream: true, stream_options: { include_obfuscation: false, include_usage: true }, n: 2 })
  t.same(Object.keys(out), ['model', 'stream', 'stream_options', 'n'])
})

t.test('an empty-looking object gets no stray comma', async (t) => {
  const body = { stream: true }
  t.equal(injectIncludeUsage(body, Buffer.from('{"stream":true}'))!.toString(), '{"stream":true,"stream_options":{"include_usage":true}}')
})

t.test('does not apply: not streaming, usage already asked, not an object', async (t) => {
  t.equal(injectIncludeUsage({ stream: false }), null)
  t.equal(injectIncludeUsage({ model: 'm' }), null)
  t.equal(injectIncludeUsage({ stream: true, stream_options: { include_usage: true } }), null)
  t.equal(injectIncludeUsage([1, 2]), null)
  t.equal(injectIncludeUsage(null), null)
  t.notOk(wantsInjection('x'))
  t.ok(wantsInjection({ stream: true, stream_options: null }))
  t.same(JSON.parse(injectIncludeUsage({ stream: true, stream_options: null })!.toString()), { stream: true, stream_options: { include_usage: true } })
})

t.test('raw bytes that do not end in } fall back to serialising', async (t) => {
  const out = injectIncludeUsage({ stream: true }, Buffer.from('garbage'))!
  t.same(JSON.parse(out.toString()), { stream: true, stream_options: { include_usage: true } })
})
