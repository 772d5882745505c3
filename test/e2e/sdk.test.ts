// Real LLM clients, unchanged, pointed at the proxy: the official openai SDK and @google/genai, through the
// shipped default config (embedded stub, no API key needed).
import t from 'tap'
import OpenAI from 'openai'
import { GoogleGenAI } from '@google/genai'
import { startProxy, ROOT } from '../helpers/proxy.js'
import { countTokens } from '../../src/llm/tokenizer.js'
import path from 'node:path'
import { readFileSync } from 'node:fs'

// the shipped default, only moved to free ports
const shipped = readFileSync(path.join(ROOT, 'config/leaky.yaml'), 'utf8')
  .replace(/^listen:.*$/m, 'listen: 127.0.0.1:0')
  .replace(/^(\s*)listen: 127\.0\.0\.1:9090/m, '$1listen: 127.0.0.1:0')
const proxy = await startProxy(shipped.includes('admin:') ? shipped : shipped + '\nadmin: { listen: 127.0.0.1:0 }\n')
t.teardown(() => proxy.stop())

const openai = new OpenAI({ apiKey: 'sk-anything', baseURL: proxy.url('/v1'), maxRetries: 0 })

t.test('chat completion, non-streaming', async (t) => {
  const r = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 12 })
  t.equal(r.object, 'chat.completion')
  const text = r.choices[0].message.content ?? ''
  t.ok(text.length > 0, 'has text')
  t.equal(r.usage?.completion_tokens, countTokens(text), 'usage counts the emitted text')
})

t.test('chat completion, streaming with include_usage', async (t) => {
  const stream = await openai.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'Count to ten' }],
    max_tokens: 20,
    stream: true,
    stream_options: { include_usage: true },
  })
  let text = ''
  let usage: OpenAI.CompletionUsage | null | undefined = null
  let chunks = 0
  for await (const c of stream) {
    chunks++
    text += c.choices[0]?.delta?.content ?? ''
    if (c.usage) usage = c.usage
  }
  t.ok(chunks > 2, `streamed ${chunks} chunks`)
  t.ok(usage, 'got the usage chunk the client asked for')
  t.equal(usage?.completion_tokens, countTokens(text))
})

t.test('embeddings', async (t) => {
  const r = await openai.embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'] })
  t.equal(r.data.length, 2)
  t.ok(r.data[0].embedding.length > 0)
  t.ok((r.usage?.prompt_tokens ?? 0) > 0)
})

t.test('qwen through its OpenAI-compatible base URL', async (t) => {
  const qwen = new OpenAI({ apiKey: 'sk-anything', baseURL: proxy.url('/qwen/compatible-mode/v1'), maxRetries: 0 })
  const r = await qwen.chat.completions.create({ model: 'qwen-plus', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 })
  t.ok((r.choices[0].message.content ?? '').length > 0)
  const s = await qwen.chat.completions.create({ model: 'qwen-plus', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, stream: true })
  let text = ''
  for await (const c of s) text += c.choices[0]?.delta?.content ?? ''
  t.ok(text.length > 0)
})

t.test('gemini generateContent and stream through /gemini/', async (t) => {
  const ai = new GoogleGenAI({ apiKey: 'x', httpOptions: { baseUrl: proxy.url('/gemini') } })
  const r = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Why is the sky blue?', config: { maxOutputTokens: 10 } })
  t.ok((r.text ?? '').length > 0)
  t.ok((r.usageMetadata?.totalTokenCount ?? 0) > 0)
  const s = await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'hello', config: { maxOutputTokens: 10 } })
  let text = ''
  let n = 0
  for await (const c of s) {
    n++
    text += c.text ?? ''
  }
  t.ok(n > 1, `streamed ${n} chunks`)
  t.ok(text.length > 0)
})

t.test('access log has one line per request and never the key', async (t) => {
  await openai.models.list()
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.path === '/v1/models')
  t.equal(line.status, 200)
  t.equal(line.route, '/v1/')
  t.notMatch(JSON.stringify(proxy.lines), /sk-anything/, 'the bearer key is never logged')
})
