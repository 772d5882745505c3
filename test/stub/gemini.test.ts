// The Gemini surface through the official @google/genai SDK with its baseUrl on the stub, plus the raw SSE
// framing Google uses (`\r\n\r\n`), the non-SSE streamed array, countTokens and thinking tokens.
import t from 'tap'
import { GoogleGenAI } from '@google/genai'
import { request } from 'undici'
import { countTokens } from '../../src/llm/tokenizer.js'
import { promptTokens, readPrompt } from '../../src/llm/prompt.js'
import { StubServer, type StubRequestEvent } from '../../src/stub/server.js'

const stub = new StubServer({ seed: 5 })
const port = await stub.listen(0)
const origin = `http://127.0.0.1:${port}`
t.teardown(() => stub.close())

const seen: StubRequestEvent[] = []
stub.on('request', (r: StubRequestEvent) => seen.push(r))

const ai = new GoogleGenAI({ apiKey: 'g-key', httpOptions: { baseUrl: origin } })
const contents = [{ role: 'user', parts: [{ text: 'Explain a leaky bucket in one sentence.' }] }]
const systemInstruction = { parts: [{ text: 'Be brief.' }] }

/** What the estimator computes for the body the SDK actually sent. */
function expectedPrompt(r: StubRequestEvent): number {
  return promptTokens(readPrompt('gemini', JSON.parse(r.body.toString()), r.url))
}

t.test('generateContent: text, usageMetadata and the request the SDK sent', async (t) => {
  const r = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents, config: { maxOutputTokens: 30, systemInstruction } })
  const sent = seen[seen.length - 1]
  t.match(sent.url, /^\/v1beta\/models\/gemini-2\.5-flash:generateContent/, 'the SDK really hit the stub')
  t.equal(sent.headers['x-goog-api-key'], 'g-key')
  t.equal(countTokens(r.text ?? ''), 30)
  t.equal(r.candidates?.[0].finishReason, 'MAX_TOKENS')
  t.equal(r.usageMetadata?.candidatesTokenCount, countTokens(r.text ?? ''))
  t.equal(r.usageMetadata?.promptTokenCount, expectedPrompt(sent))
  t.equal(r.usageMetadata?.thoughtsTokenCount, undefined, 'no thinking asked, none reported')
  t.equal(r.usageMetadata?.totalTokenCount, r.usageMetadata!.promptTokenCount! + 30)
  t.equal(r.modelVersion, 'gemini-2.5-flash')
})

t.test('generateContentStream: chunks add up, the last carries the full usage', async (t) => {
  const stream = await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents, config: { maxOutputTokens: 22 } })
  let text = ''
  let chunks = 0
  let last: Awaited<ReturnType<typeof ai.models.generateContent>> | undefined
  for await (const c of stream) {
    chunks++
    text += c.text ?? ''
    last = c
  }
  const sent = seen[seen.length - 1]
  t.match(sent.url, /:streamGenerateContent\?alt=sse$/)
  t.equal(chunks, Math.ceil(22 / 4), 'a few tokens per chunk, as Google streams')
  t.equal(last?.candidates?.[0].finishReason, 'MAX_TOKENS')
  t.equal(last?.usageMetadata?.candidatesTokenCount, countTokens(text))
  t.equal(last?.usageMetadata?.promptTokenCount, expectedPrompt(sent))
  const whole = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents, config: { maxOutputTokens: 22 } })
  t.equal(text, whole.text, 'streamed and unary answers to one prompt say the same')
})

t.test('thinking: budget or x-stub-thoughts is counted, its text never sent', async (t) => {
  const r = await ai.models.generateContent({
    model: 'gemini-2.5-pro',
    contents,
    config: { maxOutputTokens: 10, thinkingConfig: { thinkingBudget: 64 } },
  })
  const u = r.usageMetadata!
  t.equal(u.thoughtsTokenCount, 64)
  t.equal(u.candidatesTokenCount, 10)
  t.equal(countTokens(r.text ?? ''), 10)
  t.equal(u.totalTokenCount, u.promptTokenCount! + 10 + 64)
  const h = await ai.models.generateContent({ model: 'gemini-2.5-pro', contents, config: { maxOutputTokens: 5, httpOptions: { headers: { 'x-stub-thoughts': '9' } } } })
  t.equal(h.usageMetadata?.thoughtsTokenCount, 9, 'the header wins')
})

t.test('raw SSE framing: data: {...}\\r\\n\\r\\n, usage so far on every chunk', async (t) => {
  const res = await request(`${origin}/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-tokens': '9' },
    body: JSON.stringify({ contents }),
  })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'text/event-stream')
  const raw = await res.body.text()
  t.ok(raw.endsWith('\r\n\r\n'))
  const events = raw.split('\r\n\r\n').filter(Boolean).map((e) => JSON.parse(e.replace(/^data: /, '')))
  t.same(events.map((e) => e.usageMetadata.candidatesTokenCount), [4, 8, 9], 'cumulative, exact at the end')
  t.same(events.map((e) => e.candidates[0].finishReason), [undefined, undefined, 'STOP'])
})

t.test('without alt=sse the stream is one JSON array', async (t) => {
  const res = await request(`${origin}/v1beta/models/gemini-2.0-flash:streamGenerateContent`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-tokens': '6' },
    body: JSON.stringify({ contents }),
  })
  const arr = (await res.body.json()) as Array<{ candidates: Array<{ content: { parts: Array<{ text: string }> } }> }>
  t.equal(arr.length, 2)
  t.equal(countTokens(arr.map((c) => c.candidates[0].content.parts[0].text).join('')), 6)
})

t.test('countTokens and the model list', async (t) => {
  const c = await ai.models.countTokens({ model: 'gemini-2.5-flash', contents })
  t.equal(c.totalTokens, promptTokens(readPrompt('gemini', { contents })))
  const res = await request(`${origin}/v1beta/models`)
  const list = (await res.body.json()) as { models: Array<{ name: string }> }
  t.ok(list.models.some((m) => m.name === 'models/gemini-2.5-flash'))
})

t.test('errors in google.rpc.Status shape', async (t) => {
  for (const [status, name] of [[429, 'RESOURCE_EXHAUSTED'], [500, 'INTERNAL'], [503, 'UNAVAILABLE']] as const) {
    const res = await request(`${origin}/v1beta/models/gemini-2.5-flash:generateContent`, {
      method: 'POST',
      headers: { 'x-stub-error': String(status) },
      body: JSON.stringify({ contents }),
    })
    t.equal(res.statusCode, status)
    t.match(await res.body.json(), { error: { code: status, message: String, status: name } })
  }
  const err = await ai.models
    .generateContent({ model: 'gemini-2.5-flash', contents, config: { httpOptions: { headers: { 'x-stub-error': '429' } } } })
    .catch((e: unknown) => e)
  t.match(String(err), /429/, 'the SDK surfaces the status')
})
