// Real LLM clients, unchanged and at their default settings (Accept-Encoding included), pointed at the proxy: the
// official openai SDK (chat, embeddings, Responses), @google/genai and @anthropic-ai/sdk, through the shipped
// default config (embedded stub, no API key needed). What the proxy accounted (access line, token metrics) must be
// what the stub reported to the SDK.
import t from 'tap'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { GoogleGenAI } from '@google/genai'
import { startProxy, scrapeMetrics, ROOT } from '../helpers/proxy.js'
import { countTokens } from '../../src/llm/tokenizer.js'
import { promptTokens, readPrompt } from '../../src/llm/prompt.js'
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

/** The access line of the request the client tagged with `x-request-id: id`. */
const accessOf = (id: string) => proxy.waitLog((l) => l.msg === 'access' && l.req_id === id)

/** leaky_llm_tokens_total of one upstream and kind. */
async function tokensMetric(upstream: string, kind: string): Promise<number> {
  let sum = 0
  for (const line of (await scrapeMetrics(proxy)).split('\n')) {
    if (line.startsWith('leaky_llm_tokens_total{') && line.includes(`upstream="${upstream}"`) && line.includes(`kind="${kind}"`)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1))
    }
  }
  return sum
}

/** Usage the stub reported to the SDKs, by upstream: the token metrics must add up to it. */
const reported = { anthropic: { prompt: 0, completion: 0 }, responsesThoughts: 0 }

t.test('@anthropic-ai/sdk messages.create through /anthropic: parsed, accounted as the stub reported', async (t) => {
  const claude = new Anthropic({ apiKey: 'sk-anything', baseURL: proxy.url('/anthropic'), maxRetries: 0 })
  const body = { model: 'claude-sonnet-4-5', max_tokens: 24, system: 'You are terse.', messages: [{ role: 'user' as const, content: 'What is a leaky bucket?' }] }
  const m = await claude.messages.create(body, { headers: { 'x-request-id': 'sdk-anthropic-json' } })
  const text = m.content[0].type === 'text' ? m.content[0].text : ''
  t.equal(m.type, 'message')
  t.equal(countTokens(text), 24)
  t.equal(m.stop_reason, 'max_tokens')
  t.equal(m.usage.output_tokens, 24)
  t.equal(m.usage.input_tokens, promptTokens(readPrompt('anthropic-messages', body)), "the stub's prompt count is the proxy's estimate")
  const line = await accessOf('sdk-anthropic-json')
  t.match(line, {
    status: 200, route: '/anthropic/', upstream: 'stub-anthropic', model: 'claude-sonnet-4-5', tokens_source: 'reported',
    tokens_prompt: m.usage.input_tokens, tokens_completion: m.usage.output_tokens, tokens_total: m.usage.input_tokens + m.usage.output_tokens,
    tokens_estimate: m.usage.input_tokens + 24,
  })
  reported.anthropic.prompt += m.usage.input_tokens
  reported.anthropic.completion += m.usage.output_tokens
})

t.test('@anthropic-ai/sdk messages.stream: message_start + message_delta usage accounted', async (t) => {
  const claude = new Anthropic({ apiKey: 'sk-anything', baseURL: proxy.url('/anthropic'), maxRetries: 0 })
  const stream = claude.messages.stream(
    { model: 'claude-haiku-4-5', max_tokens: 40, messages: [{ role: 'user', content: 'Stream me something.' }] },
    { headers: { 'x-request-id': 'sdk-anthropic-sse' } },
  )
  let text = ''
  stream.on('text', (d) => (text += d))
  const m = await stream.finalMessage()
  t.equal(countTokens(text), 40)
  t.equal(m.usage.output_tokens, 40, 'the cumulative count of message_delta')
  t.ok(m.usage.input_tokens > 0)
  t.match(await accessOf('sdk-anthropic-sse'), {
    status: 200, upstream: 'stub-anthropic', tokens_source: 'reported',
    tokens_prompt: m.usage.input_tokens, tokens_completion: 40, tokens_total: m.usage.input_tokens + 40,
  })
  reported.anthropic.prompt += m.usage.input_tokens
  reported.anthropic.completion += 40
})

t.test("@anthropic-ai/sdk at the proxy's root: /v1/messages goes to the Anthropic route, not OpenAI's /v1/", async (t) => {
  const claude = new Anthropic({ apiKey: 'sk-anything', baseURL: proxy.url(''), maxRetries: 0 })
  const m = await claude.messages.create(
    { model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] },
    { headers: { 'x-request-id': 'sdk-anthropic-root' } },
  )
  t.match(await accessOf('sdk-anthropic-root'), {
    status: 200, route: '/v1/messages', upstream: 'stub-anthropic', tokens_source: 'reported',
    tokens_prompt: m.usage.input_tokens, tokens_completion: 8, tokens_total: m.usage.input_tokens + 8,
  })
  reported.anthropic.prompt += m.usage.input_tokens
  reported.anthropic.completion += 8
})

t.test('openai responses.create through /v1: parsed, accounted as the stub reported', async (t) => {
  const body = { model: 'gpt-4o-mini', instructions: 'Be brief.', input: 'What is a token bucket?', max_output_tokens: 20 }
  const r = await openai.responses.create(body, { headers: { 'x-request-id': 'sdk-responses-json' } })
  t.equal(r.object, 'response')
  t.equal(countTokens(r.output_text), 20)
  t.equal(r.status, 'incomplete', 'stopped at max_output_tokens')
  const u = r.usage!
  t.equal(u.input_tokens, promptTokens(readPrompt('openai-responses', body)))
  t.match(await accessOf('sdk-responses-json'), {
    status: 200, route: '/v1/', upstream: 'stub-openai', model: 'gpt-4o-mini', tokens_source: 'reported',
    tokens_prompt: u.input_tokens, tokens_completion: u.output_tokens, tokens_total: u.total_tokens, tokens_estimate: u.input_tokens + 20,
  })
})

t.test('openai responses.create stream with reasoning: response.completed usage accounted, thoughts apart', async (t) => {
  const stream = await openai.responses.create(
    { model: 'o4-mini', input: [{ role: 'user', content: 'Think, then answer.' }], stream: true },
    { headers: { 'x-request-id': 'sdk-responses-sse', 'x-stub-thoughts': '32' } },
  )
  let text = ''
  let usage: OpenAI.Responses.ResponseUsage | undefined
  let events = 0
  for await (const ev of stream) {
    events++
    if (ev.type === 'response.output_text.delta') text += ev.delta
    if (ev.type === 'response.completed') usage = ev.response.usage
  }
  t.ok(events > 5, `${events} events`)
  t.ok(usage, 'response.completed carried usage')
  t.equal(usage?.output_tokens, countTokens(text) + 32)
  t.equal(usage?.output_tokens_details.reasoning_tokens, 32)
  t.match(await accessOf('sdk-responses-sse'), {
    status: 200, upstream: 'stub-openai', tokens_source: 'reported',
    tokens_prompt: usage!.input_tokens, tokens_completion: usage!.output_tokens, tokens_total: usage!.total_tokens, tokens_thoughts: 32,
  })
  reported.responsesThoughts += 32
})

t.test('token metrics add up to what the stub reported', async (t) => {
  const a = reported.anthropic
  t.equal(await tokensMetric('stub-anthropic', 'prompt'), a.prompt, 'anthropic prompt')
  t.equal(await tokensMetric('stub-anthropic', 'completion'), a.completion, 'anthropic completion')
  // stub-openai serves the chat and embeddings tests too: only the thoughts are the Responses tests' alone
  t.equal(await tokensMetric('stub-openai', 'thoughts'), reported.responsesThoughts, 'reasoning kept apart')
})
