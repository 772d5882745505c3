// Same seed + same request ⇒ the same bytes, ids and timestamps included; the seed may come from the server
// option or from x-stub-seed. Unseeded, texts stay deterministic and ids become unique.
import t from 'tap'
import { request } from 'undici'
import { StubServer } from '../../src/stub/server.js'

const a = new StubServer({ seed: 1234 })
const b = new StubServer({ seed: 1234 })
const other = new StubServer({ seed: 99 })
const unseeded = new StubServer()
const origins = new Map<StubServer, string>()
for (const s of [a, b, other, unseeded]) origins.set(s, `http://127.0.0.1:${await s.listen(0)}`)
t.teardown(() => Promise.all([a.close(), b.close(), other.close(), unseeded.close()]))

const messages = [{ role: 'user', content: 'Same question every time.' }]
const CASES: Array<[string, string, unknown, Record<string, string>?]> = [
  ['chat JSON', '/v1/chat/completions', { model: 'gpt-4o-mini', messages, max_tokens: 30 }],
  ['chat SSE', '/v1/chat/completions', { model: 'gpt-4o-mini', messages, stream: true, stream_options: { include_usage: true } }],
  ['completions', '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'Same prompt' }],
  ['embeddings', '/v1/embeddings', { model: 'text-embedding-3-small', input: ['one', 'two'] }],
  ['gemini SSE', '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', { contents: [{ role: 'user', parts: [{ text: 'Same' }] }] }],
  ['qwen native SSE', '/api/v1/services/aigc/text-generation/generation', { model: 'qwen-plus', input: { messages } }, { 'x-dashscope-sse': 'enable' }],
  ['qwen compat', '/compatible-mode/v1/chat/completions', { model: 'qwen-plus', messages }],
  ['anthropic SSE', '/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 20, stream: true, messages }, { 'anthropic-version': '2023-06-01' }],
  ['anthropic JSON', '/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 20, messages }, { 'anthropic-version': '2023-06-01' }],
  ['responses SSE', '/v1/responses', { model: 'gpt-4o-mini', input: messages, stream: true }, { 'x-stub-thoughts': '8' }],
  ['responses JSON', '/v1/responses', { model: 'gpt-4o-mini', input: 'Same' }],
]

async function fetchText(s: StubServer, path: string, body: unknown, headers: Record<string, string> = {}): Promise<string> {
  const res = await request(origins.get(s)! + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  const text = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`${path}: ${res.statusCode} ${text}`)
  return text
}

t.test('two stubs with one seed answer byte for byte the same', async (t) => {
  for (const [name, path, body, headers] of CASES) {
    const x = await fetchText(a, path, body, headers)
    t.equal(await fetchText(b, path, body, headers), x, name)
    t.equal(await fetchText(a, path, body, headers), x, name + ', asked twice')
  }
})

t.test('x-stub-seed on an unseeded stub equals the seed option', async (t) => {
  for (const [name, path, body, headers] of CASES) {
    t.equal(await fetchText(unseeded, path, body, { ...headers, 'x-stub-seed': '1234' }), await fetchText(a, path, body, headers), name)
  }
})

t.test('another seed, another text', async (t) => {
  const [, path, body] = CASES[0]
  const x = JSON.parse(await fetchText(a, path, body))
  const y = JSON.parse(await fetchText(other, path, body))
  t.not(y.choices[0].message.content, x.choices[0].message.content)
  t.equal(y.usage.completion_tokens, x.usage.completion_tokens, 'same length')
})

t.test('another prompt, another text', async (t) => {
  const x = JSON.parse(await fetchText(a, '/v1/chat/completions', { messages }))
  const y = JSON.parse(await fetchText(a, '/v1/chat/completions', { messages: [{ role: 'user', content: 'A different question.' }] }))
  t.not(y.choices[0].message.content, x.choices[0].message.content)
})

t.test('unseeded: the same text, fresh ids and the current time', async (t) => {
  const [, path, body] = CASES[0]
  const x = JSON.parse(await fetchText(unseeded, path, body))
  const y = JSON.parse(await fetchText(unseeded, path, body))
  t.equal(y.choices[0].message.content, x.choices[0].message.content)
  t.not(y.id, x.id)
  t.ok(Math.abs(x.created - Date.now() / 1000) < 60, 'created is now')
  const seeded = JSON.parse(await fetchText(a, path, body))
  t.equal(seeded.created, 1735689600, 'seeded: a fixed timestamp')
})
