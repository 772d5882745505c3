// API shapes beyond each provider's main path: Azure OpenAI (deployment paths, `api-key` as the client's virtual
// key and as the upstream's credential) through the official AzureOpenAI client; Gemini embedContent and
// batchEmbedContents metered (no usageMetadata: the prompt is what they cost), countTokens forwarded and never
// charged as generation.
import t from 'tap'
import { createServer } from 'node:http'
import { once } from 'node:events'
import { request } from 'undici'
import { AzureOpenAI } from 'openai'
import { startProxy, baseConfig } from '../helpers/proxy.js'
import { startReplay } from '../helpers/replay.js'
import { startStub } from '../helpers/stub.js'
import { promptTokens, readPrompt, shapeOf } from '../../src/llm/prompt.js'
import { estimateTokens } from '../../src/llm/estimate.js'

t.test('shapes by path', async (t) => {
  t.equal(shapeOf('openai', '/openai/deployments/gpt-4o-mini/chat/completions'), 'openai-chat')
  t.equal(shapeOf('openai', '/openai/deployments/emb/embeddings'), 'openai-embeddings')
  t.equal(shapeOf('openai', '/openai/responses'), 'openai-responses')
  t.equal(shapeOf('openai', '/v1/responses'), 'openai-responses')
  t.equal(shapeOf('openai', '/v1/responses/resp_123'), 'other', 'retrieving a stored response costs no tokens')
  t.equal(shapeOf('anthropic', '/v1/messages'), 'anthropic-messages')
  t.equal(shapeOf('anthropic', '/v1/messages/count_tokens'), 'other')
  t.equal(shapeOf('gemini', '/v1beta/models/text-embedding-004:embedContent'), 'gemini-embed')
  t.equal(shapeOf('gemini', '/v1beta/models/text-embedding-004:batchEmbedContents'), 'gemini-embed')
  t.equal(shapeOf('gemini', '/v1beta/models/gemini-2.5-flash:countTokens'), 'other')
  t.equal(shapeOf('gemini', '/v1beta/openai/chat/completions'), 'openai-chat', "Gemini's OpenAI-compatible endpoint")
  t.equal(readPrompt('openai-chat', { messages: [] }, '/openai/deployments/my-gpt/chat/completions').model, 'my-gpt',
    'an Azure request names its model by deployment')
})

const replay = await startReplay()
t.teardown(() => replay.close())
const { stub, origin: stubOrigin } = await startStub({ seed: 5 })
t.teardown(() => stub.close())

// a Gemini embeddings upstream: embedContent and batchEmbedContents answer vectors and no usage, as Gemini does
const embedSeen: string[] = []
const embed = createServer((req, res) => {
  embedSeen.push(req.url ?? '')
  req.resume()
  req.on('end', () => {
    const values = '[0.013168523,-0.008711934,-0.046782676,0.000699695]'
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(req.url!.includes(':batchEmbedContents')
      ? `{"embeddings":[{"values":${values}},{"values":${values}}]}`
      : `{"embedding":{"values":${values}}}`)
  })
})
embed.listen(0, '127.0.0.1')
await once(embed, 'listening')
t.teardown(() => new Promise<void>((resolve) => embed.close(() => resolve())))
const embedOrigin = `http://127.0.0.1:${(embed.address() as { port: number }).port}`

const BURST = 1_000_000
const proxy = await startProxy(baseConfig(`limits:
  tokens: { per: key, tokens: 1M/month, burst: ${BURST} }
keys:
  - { id: azure-app, key: sk-azure }
  - { id: embed-app, key: sk-embed }
  - { id: count-app, key: sk-count }
upstreams:
  azure: { provider: openai, targets: ["${replay.origin}"], headers: { api-key: azure-upstream-key } }
  gemini: { provider: gemini, targets: ["${embedOrigin}"], headers: { x-goog-api-key: upstream-key } }
  gemini-stub: { provider: gemini, targets: ["${stubOrigin}"], headers: { x-goog-api-key: upstream-key } }
routes:
  - { path: /openai/, upstream: azure, auth: key, limits: [tokens] }
  - { path: /gemini/, upstream: gemini, strip_prefix: true, auth: key, limits: [tokens] }
  - { path: /gemini-stub/, upstream: gemini-stub, strip_prefix: true, auth: key, limits: [tokens] }
`))
t.teardown(() => proxy.stop())

function azure(file: string, name: string): AzureOpenAI {
  return new AzureOpenAI({
    endpoint: proxy.url(''), apiKey: 'sk-azure', apiVersion: '2024-10-21', deployment: 'gpt-4o-mini', maxRetries: 0,
    defaultHeaders: { 'x-replay': name, 'x-replay-file': file },
  })
}

async function accessLine(pred: (l: Record<string, unknown>) => boolean) {
  return proxy.waitLog((l) => l.msg === 'access' && pred(l))
}

t.test('Azure OpenAI: deployment path, api-key in and out, usage metered', async (t) => {
  const client = azure('openai/chat-json-toolcall.json', 'azure-json')
  const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Can the country of Crumpet have dragons?' }] })
  t.same(r.usage && { p: r.usage.prompt_tokens, c: r.usage.completion_tokens }, { p: 92, c: 17 }, 'the SDK parsed the answer')
  const seen = replay.seen.get('azure-json')!
  t.match(seen.path, /^\/openai\/deployments\/gpt-4o-mini\/chat\/completions\?api-version=2024-10-21$/, 'the Azure path reached the upstream')
  t.equal(seen.headers['api-key'], 'azure-upstream-key', "the upstream got the proxy's key, not the client's")
  const line = await accessLine((l) => l.key_id === 'azure-app' && l.tokens_total === 109)
  t.match(line, { tokens_prompt: 92, tokens_completion: 17, tokens_source: 'reported', route: '/openai/' })

  const s = azure('openai/chat-sse-usage-toolcall.sse', 'azure-sse')
  const stream = await s.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'What is 1231 * 2331?' }], stream: true })
  let chunks = 0
  for await (const c of stream) {
    chunks++
    t.notOk(c.choices.length === 0 && c.usage, 'the usage chunk the proxy asked for never reaches the client')
  }
  t.ok(chunks > 3)
  t.match(JSON.parse(replay.seen.get('azure-sse')!.body), { stream_options: { include_usage: true } }, 'include_usage was injected upstream')
  t.match(await accessLine((l) => l.key_id === 'azure-app' && l.tokens_total === 74), { tokens_prompt: 54, tokens_completion: 20 })

  const e = azure('openai/embeddings.json', 'azure-emb')
  await e.embeddings.create({ model: 'text-embedding-3-small', input: ['Hello, world!'] })
  t.match(replay.seen.get('azure-emb')!.path, /^\/openai\/deployments\/gpt-4o-mini\/embeddings\?/)
  t.match(await accessLine((l) => l.key_id === 'azure-app' && l.tokens_total === 4), { tokens_prompt: 4, tokens_completion: 0 })

  const bad = new AzureOpenAI({ endpoint: proxy.url(''), apiKey: 'sk-wrong', apiVersion: '2024-10-21', deployment: 'gpt-4o-mini', maxRetries: 0 })
  await t.rejects(bad.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }), { status: 401 },
    'an unknown api-key is refused')
})

async function post(path: string, key: string, body: unknown) {
  const res = await request(proxy.url(path), { method: 'POST', headers: { 'content-type': 'application/json', 'x-goog-api-key': key }, body: JSON.stringify(body) })
  const text = await res.body.text()
  return { res, text, reqId: res.headers['x-request-id'] as string }
}

t.test('Gemini embedContent and batchEmbedContents cost their prompt', async (t) => {
  const one = { content: { parts: [{ text: 'The quick brown fox jumps over the lazy dog' }] } }
  const r1 = await post('/gemini/v1beta/models/text-embedding-004:embedContent', 'sk-embed', one)
  t.equal(r1.res.statusCode, 200)
  const p1 = estimateTokens('gemini-embed', one, '/v1beta/models/text-embedding-004:embedContent', { dashscopeSse: false }, 1024)
  t.equal(p1.maxOutput, 0, 'no output is pre-charged for embeddings')
  t.ok(p1.prompt > 5)
  t.match(await accessLine((l) => l.req_id === r1.reqId), { tokens_prompt: p1.prompt, tokens_completion: 0, tokens_total: p1.prompt, tokens_source: 'counted', model: 'text-embedding-004' })

  const batch = { requests: [{ model: 'models/text-embedding-004', ...one }, { model: 'models/text-embedding-004', content: { parts: [{ text: 'a second text to embed' }] } }] }
  const r2 = await post('/gemini/v1beta/models/text-embedding-004:batchEmbedContents', 'sk-embed', batch)
  t.equal(r2.res.statusCode, 200)
  const p2 = estimateTokens('gemini-embed', batch, '/v1beta/models/text-embedding-004:batchEmbedContents', { dashscopeSse: false }, 1024)
  t.ok(p2.prompt > p1.prompt, 'both texts count')
  t.match(await accessLine((l) => l.req_id === r2.reqId), { tokens_prompt: p2.prompt, tokens_completion: 0, tokens_source: 'counted' })
  t.same(embedSeen, ['/v1beta/models/text-embedding-004:embedContent', '/v1beta/models/text-embedding-004:batchEmbedContents'])
})

t.test('Gemini countTokens is forwarded, never charged as generation', async (t) => {
  const body = { contents: [{ role: 'user', parts: [{ text: 'How many tokens is this sentence?' }] }] }
  const r = await post('/gemini-stub/v1beta/models/gemini-2.5-flash:countTokens', 'sk-count', body)
  t.equal(r.res.statusCode, 200)
  t.equal(JSON.parse(r.text).totalTokens, promptTokens(readPrompt('gemini', body, '/v1beta/models/gemini-2.5-flash:countTokens')), "the stub's count came back")
  const line = await accessLine((l) => l.req_id === r.reqId)
  t.equal(line.tokens_total, undefined, 'no usage recorded')
  t.equal(line.tokens_estimate, 0, 'nothing pre-charged')
  const left = r.res.headers['x-ratelimit-remaining-tokens']
  if (left !== undefined) t.equal(Number(left), BURST, "the key's token bucket is untouched")
})
