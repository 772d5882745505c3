// The meters against the product's own stub upstream over a real socket: the stub counts prompts with the same
// tokenizer, so an estimate and the reported usage must agree to the token, and a cut stream's count must equal
// the tokens of the text that actually arrived.
import t from 'tap'
import { request } from 'undici'
import { startStub } from '../helpers/stub.js'
import { createMeter, type UsageMeter } from '../../src/llm/usage.js'
import { estimateTokens } from '../../src/llm/estimate.js'
import { injectIncludeUsage } from '../../src/llm/inject.js'
import { shapeOf } from '../../src/llm/prompt.js'
import { countTokens } from '../../src/llm/tokenizer.js'

const { stub, origin } = await startStub({ seed: 42 })
t.teardown(() => stub.close())

interface Call {
  provider: 'openai' | 'qwen' | 'gemini'
  path: string
  body: Record<string, unknown>
  headers?: Record<string, string>
  strip?: boolean
}

/** Send, meter the body chunk by chunk as the stream stage would; what the client got, and the meter. */
async function call(c: Call, raw?: Buffer): Promise<{ out: Buffer; upstream: Buffer; meter: UsageMeter; prompt: number; cut: boolean }> {
  const shape = shapeOf(c.provider, c.path)
  const est = estimateTokens(shape, c.body, c.path, { dashscopeSse: c.headers?.['x-dashscope-sse'] === 'enable' }, 256)
  const res = await request(origin + c.path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-tokens': '40', ...c.headers },
    body: raw ?? JSON.stringify(c.body),
  })
  const ct = String(res.headers['content-type'])
  const meter = createMeter(shape, { stream: ct.startsWith('text/event-stream'), stripUsageChunk: c.strip === true, model: est.info.model, promptTokens: est.prompt })
  const out: Buffer[] = []
  const upstream: Buffer[] = []
  let cut = false
  try {
    for await (const chunk of res.body) {
      upstream.push(chunk)
      out.push(meter.write(chunk))
    }
    out.push(meter.end())
  } catch {
    cut = true
  }
  return { out: Buffer.concat(out), upstream: Buffer.concat(upstream), meter, prompt: est.prompt, cut }
}

/** The text of OpenAI-shaped SSE output, read independently of the meter. */
function openaiText(sse: string): string {
  let s = ''
  for (const ev of sse.split('\n\n')) {
    if (!ev.startsWith('data: {')) continue
    for (const ch of JSON.parse(ev.slice(6)).choices) s += ch.delta?.content ?? ch.text ?? ''
  }
  return s
}

const chat = { model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Name three rivers.' }], stream: true }

for (const [provider, path] of [['openai', '/v1/chat/completions'], ['qwen', '/compatible-mode/v1/chat/completions']] as const) {
  t.test(`${path}: injected include_usage is reported, and the client sees the stream it asked for`, async (t) => {
    const plain = await call({ provider, path, body: chat })
    t.equal(plain.meter.usage().source, 'counted', 'no usage without asking')
    t.equal(plain.meter.usage().completion, 40)

    const injected = injectIncludeUsage(chat, Buffer.from(JSON.stringify(chat)))!
    const r = await call({ provider, path, body: chat, strip: true, headers: { 'x-stub-thoughts': '7' } }, injected)
    t.same(r.meter.usage(), { prompt: r.prompt, completion: 47, thoughts: 7, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: r.prompt + 47, model: 'gpt-4o-mini', source: 'reported' })
    t.ok(r.upstream.includes('"choices":[],"usage":{'), 'the upstream sent the usage chunk')
    t.notOk(r.out.includes('"choices":[],"usage":{'), 'the client did not get it')
    // with include_usage OpenAI adds "usage":null to each chunk; apart from that, the very stream of the plain request
    t.equal(r.out.toString().replaceAll(',"usage":null', ''), plain.out.toString())
  })
}

t.test('chat JSON, legacy completions stream, embeddings', async (t) => {
  const j = await call({ provider: 'openai', path: '/v1/chat/completions', body: { ...chat, stream: false } })
  t.same(j.meter.usage(), { prompt: j.prompt, completion: 40, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: j.prompt + 40, model: 'gpt-4o-mini', source: 'reported' })
  t.ok(j.out.equals(j.upstream))

  const body = { model: 'gpt-3.5-turbo-instruct', prompt: 'Once upon a time', stream: true, stream_options: { include_usage: true } }
  const c = await call({ provider: 'openai', path: '/v1/completions', body })
  t.same(c.meter.usage(), { prompt: c.prompt, completion: 40, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: c.prompt + 40, model: 'gpt-3.5-turbo-instruct', source: 'reported' })

  const e = await call({ provider: 'openai', path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: ['alpha beta', 'gamma'] } })
  t.same(e.meter.usage(), { prompt: e.prompt, completion: 0, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: e.prompt, model: 'text-embedding-3-small', source: 'reported' })
})

t.test('a cut OpenAI stream counts exactly the deltas that arrived', async (t) => {
  const r = await call({ provider: 'openai', path: '/v1/chat/completions', body: chat, strip: true, headers: { 'x-stub-error': 'cut' } }, injectIncludeUsage(chat)!)
  t.ok(r.cut, 'the upstream cut the stream')
  const text = openaiText(r.out.toString())
  t.ok(text.length > 0 && countTokens(text) < 40, 'part of the text arrived')
  t.same(r.meter.usage(), { prompt: r.prompt, completion: countTokens(text), thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: r.prompt + countTokens(text), model: 'gpt-4o-mini', source: 'counted' })
})

const gem = { contents: [{ role: 'user', parts: [{ text: 'Write a haiku about buckets.' }] }], generationConfig: { maxOutputTokens: 100 } }

t.test('Gemini: JSON, alt=sse and the streamed JSON array agree', async (t) => {
  const variants = [
    '/v1beta/models/gemini-2.5-flash:generateContent',
    '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
    '/v1beta/models/gemini-2.5-flash:streamGenerateContent',
  ]
  for (const path of variants) {
    const r = await call({ provider: 'gemini', path, body: gem, headers: { 'x-stub-thoughts': '12' } })
    t.same(r.meter.usage(), { prompt: r.prompt, completion: 52, thoughts: 12, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: r.prompt + 52, model: 'gemini-2.5-flash', source: 'reported' }, path)
    t.ok(r.out.equals(r.upstream))
  }
})

t.test('Gemini: a cut alt=sse stream counts the candidate text that arrived', async (t) => {
  const path = '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse'
  const r = await call({ provider: 'gemini', path, body: gem, headers: { 'x-stub-error': 'cut' } })
  t.ok(r.cut)
  let text = ''
  for (const ev of r.out.toString().split('\r\n\r\n')) {
    if (ev.startsWith('data: ')) for (const p of JSON.parse(ev.slice(6)).candidates[0].content.parts) text += p.text
  }
  const u = r.meter.usage()
  t.equal(u.source, 'counted')
  t.ok(text.length > 0)
  t.equal(u.completion, countTokens(text))
})

const qwen = { model: 'qwen-plus', input: { messages: [{ role: 'user', content: 'Who are you?' }] }, parameters: { result_format: 'message' } }

t.test('Qwen native: JSON and DashScope SSE, incremental or not, reported and cut', async (t) => {
  const path = '/api/v1/services/aigc/text-generation/generation'
  const j = await call({ provider: 'qwen', path, body: qwen, headers: { 'x-stub-thoughts': '3' } })
  t.same(j.meter.usage(), { prompt: j.prompt, completion: 43, thoughts: 3, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: j.prompt + 43, model: 'qwen-plus', source: 'reported' })
  for (const incremental of [false, true]) {
    const body = { ...qwen, parameters: { ...qwen.parameters, incremental_output: incremental } }
    const s = await call({ provider: 'qwen', path, body, headers: { 'x-dashscope-sse': 'enable' } })
    t.same(s.meter.usage(), { prompt: s.prompt, completion: 40, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: s.prompt + 40, model: 'qwen-plus', source: 'reported' }, `incremental ${incremental}`)

    const c = await call({ provider: 'qwen', path, body, headers: { 'x-dashscope-sse': 'enable', 'x-stub-error': 'cut' } })
    t.ok(c.cut)
    const texts: string[] = []
    for (const ev of c.out.toString().split('\n\n')) {
      const at = ev.indexOf('data:')
      if (at >= 0) texts.push(JSON.parse(ev.slice(at + 5)).output.choices[0].message.content)
    }
    const text = incremental ? texts.join('') : texts[texts.length - 1]
    t.equal(c.meter.usage().source, 'counted')
    t.equal(c.meter.usage().completion, countTokens(text), `cut, incremental ${incremental}`)
  }
})
