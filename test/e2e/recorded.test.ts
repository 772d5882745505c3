// The conformance corpus: every response in ../shared/recorded (recorded from the real providers by public SDK and
// framework test suites, not by our stub; sources and expected usage in its SOURCES.md) replayed through the real
// proxy. For each case: the client gets the recording's bytes (decoded, when the upstream compressed it; without
// the usage-only chunk when the proxy asked for usage on the client's behalf), the access line carries the
// recording's own usage, and the token bucket is charged exactly the provider's total.
import t from 'tap'
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { startProxy, baseConfig, metricValue, scrapeMetrics } from '../helpers/proxy.js'
import { recording, recordedDir, ssePieces, startReplay } from '../helpers/replay.js'
import { promptTokens, readPrompt } from '../../src/llm/prompt.js'
import { countTokens } from '../../src/llm/tokenizer.js'

interface Expect {
  prompt: number
  completion: number
  total: number
  thoughts: number
  cached: number
  toolPrompt?: number
  cacheWrite?: number
  source: 'reported' | 'counted'
  /** the response's model; absent where the recording names none (the request's model is logged) */
  model?: string
}

interface Case {
  name: string
  /** recording file, relative to ../shared/recorded */
  file: string
  /** path on the proxy */
  path: string
  body: Record<string, unknown>
  headers?: Record<string, string>
  gzip?: boolean
  /** the proxy injected include_usage: the client must not see the usage-only chunk */
  stripped?: boolean
  expect: Expect | 'counted-text'
}

const BURST = 10_000_000
const dir = recordedDir()
const requestOf = (file: string): Record<string, unknown> => JSON.parse(recording(file.replace(/\.(sse|json)$/, '.request.json')).toString('utf8'))
const asked = (b: Record<string, unknown>) => ({ ...b, stream: true, stream_options: { include_usage: true } })
const injected = (b: Record<string, unknown>) => {
  const { stream_options: _drop, ...rest } = b
  return { ...rest, stream: true }
}
const chat = (model: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'Say something short.' }], ...extra })
const gem = (model: string, action: string) => `/gemini/v1beta/models/${model}:${action}`
const QWEN_NATIVE = '/qwen/api/v1/services/aigc/text-generation/generation'
const QWEN_COMPAT = '/qwen/compatible-mode/v1/chat/completions'

const r = (prompt: number, completion: number, total: number, thoughts: number, cached: number, model?: string, more: Partial<Expect> = {}): Expect =>
  ({ prompt, completion, total, thoughts, cached, source: 'reported', model, ...more })

const CASES: Case[] = [
  { name: 'openai/chat-json-toolcall', file: 'openai/chat-json-toolcall.json', path: '/v1/chat/completions', body: requestOf('openai/chat-json-toolcall.json'), expect: r(92, 17, 109, 0, 0, 'gpt-4o-mini-2024-07-18') },
  { name: 'openai/chat-json-toolcall#gzip', file: 'openai/chat-json-toolcall.json', path: '/v1/chat/completions', body: requestOf('openai/chat-json-toolcall.json'), gzip: true, expect: r(92, 17, 109, 0, 0, 'gpt-4o-mini-2024-07-18') },
  { name: 'openai/chat-json-text', file: 'openai/chat-json-text.json', path: '/v1/chat/completions', body: requestOf('openai/chat-json-text.json'), expect: r(146, 3, 149, 0, 0, 'gpt-4o-mini-2024-07-18') },
  { name: 'openai/chat-json-o3-mini-reasoning', file: 'openai/chat-json-o3-mini-reasoning.json', path: '/v1/chat/completions', body: requestOf('openai/chat-json-o3-mini-reasoning.json'), expect: r(7, 87, 94, 64, 0, 'o3-mini-2025-01-31') },
  { name: 'openai/chat-sse-usage-toolcall#asked', file: 'openai/chat-sse-usage-toolcall.sse', path: '/v1/chat/completions', body: asked(requestOf('openai/chat-sse-usage-toolcall.sse')), expect: r(54, 20, 74, 0, 0, 'gpt-4o-mini-2024-07-18') },
  { name: 'openai/chat-sse-usage-toolcall#injected', file: 'openai/chat-sse-usage-toolcall.sse', path: '/v1/chat/completions', body: injected(requestOf('openai/chat-sse-usage-toolcall.sse')), stripped: true, expect: r(54, 20, 74, 0, 0, 'gpt-4o-mini-2024-07-18') },
  { name: 'openai/chat-sse-usage-text#asked', file: 'openai/chat-sse-usage-text.sse', path: '/v1/chat/completions', body: asked(requestOf('openai/chat-sse-usage-text.sse')), expect: r(78, 9, 87, 0, 0, 'gpt-4o-mini-2024-07-18') },
  { name: 'openai/chat-sse-usage-text#injected', file: 'openai/chat-sse-usage-text.sse', path: '/v1/chat/completions', body: injected(requestOf('openai/chat-sse-usage-text.sse')), stripped: true, expect: r(78, 9, 87, 0, 0, 'gpt-4o-mini-2024-07-18') },
  // OpenRouter's usage rides on a chunk that still has choices: never stripped, the client gets it either way
  { name: 'openai/chat-sse-openrouter-usage#asked', file: 'openai/chat-sse-openrouter-usage.sse', path: '/v1/chat/completions', body: asked(requestOf('openai/chat-sse-openrouter-usage.sse')), expect: r(57, 17, 74, 0, 0, 'moonshotai/kimi-k2') },
  { name: 'openai/chat-sse-openrouter-usage#injected', file: 'openai/chat-sse-openrouter-usage.sse', path: '/v1/chat/completions', body: injected(requestOf('openai/chat-sse-openrouter-usage.sse')), expect: r(57, 17, 74, 0, 0, 'moonshotai/kimi-k2') },
  { name: 'openai/embeddings', file: 'openai/embeddings.json', path: '/v1/embeddings', body: requestOf('openai/embeddings.json'), expect: r(4, 0, 4, 0, 0, 'text-embedding-3-small') },
  { name: 'openai/responses-sse', file: 'openai/responses-sse.sse', path: '/v1/responses', body: requestOf('openai/responses-sse.sse'), expect: r(11, 5, 16, 0, 0, 'gpt-5.5-2026-04-23') },
  { name: 'openai/chat-sse-usage-n3#asked', file: 'openai/chat-sse-usage-n3.sse', path: '/v1/chat/completions', body: asked(chat('gpt-4o-mini', { n: 3 })), expect: r(23, 408, 431, 0, 0, 'gpt-4o-mini-2024-07-18') },
  { name: 'openai/chat-sse-usage-n3#injected', file: 'openai/chat-sse-usage-n3.sse', path: '/v1/chat/completions', body: injected(chat('gpt-4o-mini', { n: 3 })), stripped: true, expect: r(23, 408, 431, 0, 0, 'gpt-4o-mini-2024-07-18') },
  // recorded without include_usage: a server that ignores the proxy's request for it; the delivered text is counted
  { name: 'openai/chat-sse-nousage-emoji', file: 'openai/chat-sse-nousage-emoji.sse', path: '/v1/chat/completions', body: injected(chat('chatgpt-4o-latest')), expect: 'counted-text' },
  { name: 'openai/chat-sse-nousage-text', file: 'openai/chat-sse-nousage-text.sse', path: '/v1/chat/completions', body: injected(chat('gpt-4o-mini')), expect: 'counted-text' },
  { name: 'gemini/generate-webfetch-tooluse', file: 'gemini/generate-webfetch-tooluse.json', path: gem('gemini-2.5-flash', 'generateContent'), body: requestOf('gemini/generate-webfetch-tooluse.json'), expect: r(32, 88, 2515, 47, 0, 'gemini-2.5-flash', { toolPrompt: 2395 }) },
  { name: 'gemini/generate-video-cached', file: 'gemini/generate-video-cached.json', path: gem('gemini-2.5-flash', 'generateContent'), body: requestOf('gemini/generate-video-cached.json'), expect: r(17713, 889, 18602, 821, 17379, 'gemini-2.5-flash') },
  { name: 'gemini/stream-thoughts', file: 'gemini/stream-thoughts.sse', path: gem('gemini-2.5-pro', 'streamGenerateContent') + '?alt=sse', body: requestOf('gemini/stream-thoughts.sse'), expect: r(34, 1256, 1290, 787, 0, 'gemini-2.5-pro') },
  { name: 'gemini/stream-text', file: 'gemini/stream-text.sse', path: gem('gemini-2.0-flash-exp', 'streamGenerateContent') + '?alt=sse', body: requestOf('gemini/stream-text.sse'), expect: r(13, 8, 21, 0, 0, 'gemini-2.0-flash-exp') },
  { name: 'gemini/stream-array-thoughts', file: 'gemini/stream-array-thoughts.json', path: gem('gemini-flash-latest', 'streamGenerateContent'), body: requestOf('gemini/stream-array-thoughts.json'), expect: r(11, 293, 304, 291, 0, 'gemini-3.6-flash') },
  { name: 'gemini/stream-array-thoughts#gzip', file: 'gemini/stream-array-thoughts.json', path: gem('gemini-flash-latest', 'streamGenerateContent'), body: requestOf('gemini/stream-array-thoughts.json'), gzip: true, expect: r(11, 293, 304, 291, 0, 'gemini-3.6-flash') },
  { name: 'gemini/generate-text-thoughts', file: 'gemini/generate-text-thoughts.json', path: gem('gemini-3-pro-preview', 'generateContent'), body: { contents: [{ role: 'user', parts: [{ text: 'Hello' }] }] }, expect: r(9, 272, 281, 244, 0, 'gemini-3-pro-preview') },
  { name: 'qwen/native-text-sse', file: 'qwen/native-text-sse.sse', path: QWEN_NATIVE, body: requestOf('qwen/native-text-sse.sse'), headers: { 'x-dashscope-sse': 'enable' }, expect: r(16, 6, 22, 0, 0) },
  { name: 'qwen/native-tools-sse', file: 'qwen/native-tools-sse.sse', path: QWEN_NATIVE, body: requestOf('qwen/native-tools-sse.sse'), headers: { 'x-dashscope-sse': 'enable' }, expect: r(250, 37, 287, 0, 0) },
  { name: 'qwen/native-text', file: 'qwen/native-text.json', path: QWEN_NATIVE, body: requestOf('qwen/native-text.json'), expect: r(16, 14, 30, 0, 0) },
  { name: 'qwen/native-reasoning', file: 'qwen/native-reasoning.json', path: QWEN_NATIVE, body: requestOf('qwen/native-reasoning.json'), expect: r(12, 21, 33, 20, 0) },
  { name: 'qwen/compat-text', file: 'qwen/compat-text.json', path: QWEN_COMPAT, body: chat('qwen3-max'), expect: r(18, 1064, 1082, 0, 0, 'qwen3-max') },
  { name: 'qwen/compat-reasoning#asked', file: 'qwen/compat-reasoning.sse', path: QWEN_COMPAT, body: asked(chat('qwen3-max', { enable_thinking: true })), expect: r(24, 1355, 1379, 1084, 0, 'qwen3-max') },
  { name: 'qwen/compat-reasoning#injected', file: 'qwen/compat-reasoning.sse', path: QWEN_COMPAT, body: injected(chat('qwen3-max', { enable_thinking: true })), stripped: true, expect: r(24, 1355, 1379, 1084, 0, 'qwen3-max') },
  { name: 'anthropic/messages-sse', file: 'anthropic/messages-sse.sse', path: '/anthropic/v1/messages', body: requestOf('anthropic/messages-sse.sse'), headers: { 'anthropic-version': '2023-06-01' }, expect: r(20, 5, 25, 0, 0, 'claude-sonnet-4-5-20250929') },
]

const replay = await startReplay()
t.teardown(() => replay.close())

const keys = CASES.map((_, i) => `  - { id: k${i}, key: sk-rec-${i} }`).join('\n')
const proxy = await startProxy(baseConfig(`limits_table: { capacity: 1024 }
limits:
  tokens: { per: key, tokens: 1M/month, burst: ${BURST} }
keys:
${keys}
upstreams:
  openai: { provider: openai, targets: ["${replay.origin}"], headers: { authorization: "Bearer upstream-key" } }
  gemini: { provider: gemini, targets: ["${replay.origin}"], headers: { x-goog-api-key: upstream-key } }
  qwen: { provider: qwen, targets: ["${replay.origin}"], headers: { authorization: "Bearer upstream-key" } }
  anthropic: { provider: anthropic, targets: ["${replay.origin}"], headers: { x-api-key: upstream-key } }
routes:
  - { path: /v1/, upstream: openai, auth: key, limits: [tokens] }
  - { path: /gemini/, upstream: gemini, strip_prefix: true, auth: key, limits: [tokens] }
  - { path: /qwen/, upstream: qwen, strip_prefix: true, auth: key, limits: [tokens] }
  - { path: /anthropic/, upstream: anthropic, strip_prefix: true, auth: key, limits: [tokens] }
`))
t.teardown(() => proxy.stop())

t.test('every recording in ../shared/recorded has a case here', async (t) => {
  const files: string[] = []
  for (const provider of readdirSync(dir, { withFileTypes: true })) {
    if (!provider.isDirectory()) continue
    for (const f of readdirSync(path.join(dir, provider.name))) {
      if (!f.endsWith('.request.json')) files.push(`${provider.name}/${f}`)
    }
  }
  const covered = new Set(CASES.map((c) => c.file))
  t.same(files.filter((f) => !covered.has(f)), [], 'no recording left unreplayed')
  t.equal(files.length, 24, 'the 24 recordings of SOURCES.md')
  t.ok(CASES.length >= 31, `${CASES.length} cases (SOURCES.md lists 31)`)
})

/** The recording as the client must see it: without the usage-only chunk when the proxy asked for usage itself. */
function clientBytes(c: Case): Buffer {
  const raw = recording(c.file)
  if (c.stripped !== true) return raw
  return Buffer.concat(ssePieces(raw).filter((p) => {
    const m = /^data: ?(\{.*\})\s*$/s.exec(p.toString('utf8'))
    if (m === null) return true
    const v = JSON.parse(m[1]) as { choices?: unknown[]; usage?: unknown }
    return !(Array.isArray(v.choices) && v.choices.length === 0 && v.usage !== null && typeof v.usage === 'object')
  }))
}

/** A stream's delivered text: what the proxy counts when the upstream reports no usage. */
function deliveredTokens(c: Case): number {
  let text = ''
  for (const p of ssePieces(recording(c.file))) {
    const m = /^data: ?(\{.*\})\s*$/s.exec(p.toString('utf8'))
    if (m === null) continue
    const v = JSON.parse(m[1]) as { choices?: Array<{ delta?: { content?: string } }> }
    for (const ch of v.choices ?? []) if (typeof ch.delta?.content === 'string') text += ch.delta.content
  }
  return countTokens(text)
}

// 1M/month drains 0.4 token/s: between a case's first charge and its probe (well under a second) that is never a whole token
/** Tokens left on a key's bucket, read from a probe whose estimate is known (the replay answers it 400: refunded after). */
async function remaining(key: string): Promise<number> {
  const body = chat('gpt-4o-mini', { max_tokens: 7 })
  const estimate = promptTokens(readPrompt('openai-chat', body)) + 7
  const res = await request(proxy.url('/v1/chat/completions'), {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body),
  })
  await res.body.dump()
  t.equal(res.statusCode, 400, 'the probe reached the replay server, which refuses it')
  return Number(res.headers['x-ratelimit-remaining-tokens']) + estimate
}

/** What each case accounted, by token kind, for the metrics check at the end. */
const sums = { prompt: 0, completion: 0, thoughts: 0, cached: 0, tool_prompt: 0 }

for (const [i, c] of CASES.entries()) {
  t.test(c.name, async (t) => {
    const key = `sk-rec-${i}`
    const res = await request(proxy.url(c.path), {
      method: 'POST',
      headers: {
        'content-type': 'application/json', authorization: `Bearer ${key}`, 'x-replay': c.name, 'x-replay-file': c.file,
        // what the official SDKs send by default
        'accept-encoding': 'gzip, deflate, br',
        ...(c.gzip === true ? { 'x-replay-gzip': '1' } : {}), ...c.headers,
      },
      body: JSON.stringify(c.body),
    })
    const got = Buffer.from(await res.body.arrayBuffer())
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-encoding'], undefined, 'the client gets plain bytes')
    const want = clientBytes(c)
    t.ok(got.equals(want), `client bytes are the recording's${c.stripped === true ? ' minus the usage-only chunk' : ''} (${got.length} vs ${want.length})`)
    t.equal(replay.seen.get(c.name)?.headers['accept-encoding'], 'identity', 'the proxy asked the upstream not to compress')

    const reqId = res.headers['x-request-id'] as string
    const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === reqId)
    let total: number
    if (c.expect === 'counted-text') {
      const prompt = promptTokens(readPrompt('openai-chat', c.body))
      const completion = deliveredTokens(c)
      t.match(line, { tokens_source: 'counted', tokens_prompt: prompt, tokens_completion: completion, tokens_total: prompt + completion })
      t.ok(completion > 0, 'text was counted')
      total = prompt + completion
      sums.prompt += prompt
      sums.completion += completion
    } else {
      const e = c.expect
      t.match(line, {
        tokens_source: 'reported', tokens_prompt: e.prompt, tokens_completion: e.completion, tokens_total: e.total,
        tokens_thoughts: e.thoughts > 0 ? e.thoughts : undefined, tokens_cached: e.cached > 0 ? e.cached : undefined,
        tokens_tool_prompt: e.toolPrompt, tokens_cache_write: e.cacheWrite,
      }, 'usage as the recording reports it')
      if (e.model !== undefined) t.equal(line.model, e.model, "the response's model")
      total = e.total
      sums.prompt += e.prompt
      sums.completion += e.completion
      sums.thoughts += e.thoughts
      sums.cached += e.cached
      sums.tool_prompt += e.toolPrompt ?? 0
    }
    t.equal(await remaining(key), BURST - total, "the bucket was charged the provider's total, nothing more")
  })
}

t.test('leaky_llm_tokens_total keeps the kinds apart, summing to what every case accounted', async (t) => {
  const text = await scrapeMetrics(proxy)
  for (const [kind, want] of Object.entries(sums)) {
    t.equal(metricValue(text, 'leaky_llm_tokens_total', `kind="${kind}"`), want, kind)
  }
  t.equal(metricValue(text, 'leaky_llm_tokens_total', 'model="gemini-2.5-flash"') >= 2395, true, 'a normalised model label carries them')
})
