// The limiter behind the real proxy: accuracy across worker threads, pre-charge + reconcile against the stub's
// real usage, virtual keys and tiers, provider-shaped 401/429, rate-limit headers, a full table, and the openai
// SDK's own retry honouring our Retry-After.
import t from 'tap'
import { request } from 'undici'
import OpenAI from 'openai'
import { startProxy, baseConfig } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { promptTokens, readPrompt } from '../../src/llm/prompt.js'

const { stub, origin } = await startStub({ seed: 11 })
t.teardown(() => stub.close())

// slow-draining token budgets (1000/month) with a big burst: over a test run they drain < 0.01 token, so the
// remaining tokens a header reports are exactly burst − what was charged
const proxy = await startProxy(
  baseConfig(`server: { trusted_proxies: [127.0.0.1/32] }
limits_table: { capacity: 1024 }
limits:
  key-tokens: { per: key, tokens: 1000/month, burst: 100000 }
  key-rps: { per: key, requests: 5/s, burst: 5 }
  org-tokens: { per: org, tokens: 1000/month, burst: 1000000 }
  flood: { per: global, requests: 200/s, burst: 20 }
  flood-tokens: { per: global, tokens: 2000/s, burst: 200 }
  sdk: { per: ip, requests: 2/s, burst: 1 }
  fill: { per: ip, requests: 1/day, burst: 5 }
tiers:
  gold: { scale: 4 }
keys:
  - { id: k-json, key: sk-json, org: acme }
  - { id: k-sse, key: sk-sse, org: acme }
  - { id: k-gemini, key: sk-gemini }
  - { id: k-qwen, key: sk-qwen }
  - { id: k-cut, key: sk-cut }
  - { id: k-gold, key: sk-gold, tier: gold }
upstreams:
  openai: { provider: openai, targets: ["${origin}"], headers: { authorization: "Bearer upstream-key" } }
  gemini: { provider: gemini, targets: ["${origin}"], headers: { x-goog-api-key: upstream-key } }
  qwen: { provider: qwen, targets: ["${origin}"], headers: { authorization: "Bearer upstream-key" } }
  raw: { targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: openai, auth: key, limits: [key-rps, key-tokens, org-tokens] }
  - { path: /gemini/, upstream: gemini, strip_prefix: true, auth: key, limits: [key-tokens] }
  - { path: /qwen/, upstream: qwen, strip_prefix: true, auth: key, limits: [key-tokens] }
  - { path: /flood/, upstream: raw, strip_prefix: true, limits: [flood] }
  - { path: /flood-llm/, upstream: openai, strip_prefix: true, limits: [flood-tokens] }
  - { path: /sdk/, upstream: openai, strip_prefix: true, limits: [sdk] }
  - { path: /fill/, upstream: raw, strip_prefix: true, limits: [fill] }
`),
)
t.teardown(() => proxy.stop())

const chatBody = (extra: Record<string, unknown> = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'tell me a story' }], max_tokens: 30, ...extra })

async function post(path: string, body: unknown, headers: Record<string, string>) {
  const res = await request(proxy.url(path), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { res, text: await res.body.text() }
}

/** Tokens the proxy accounted for a request, from its access line. */
async function accounted(reqId: string): Promise<number> {
  const l = await proxy.waitLog((x) => x.msg === 'access' && x.req_id === reqId)
  return (l.tokens_prompt as number) + (l.tokens_completion as number)
}

/** Remaining tokens on `key`'s key-tokens bucket as seen by a probe request whose estimate is known exactly. */
async function remainingAfterProbe(key: string): Promise<{ remaining: number; estimate: number }> {
  const body = chatBody({ max_tokens: 7 })
  const estimate = promptTokens(readPrompt('openai-chat', body)) + 7
  const { res } = await post('/v1/chat/completions', body, { authorization: `Bearer ${key}` })
  t.equal(res.statusCode, 200)
  return { remaining: Number(res.headers['x-ratelimit-remaining-tokens']), estimate }
}

t.test('pre-charge + reconcile: the bucket holds exactly the usage the stub reported', async (t) => {
  t.test('OpenAI JSON', async (t) => {
    let used = 0
    for (let i = 0; i < 3; i++) {
      const { res, text } = await post('/v1/chat/completions', chatBody({ max_tokens: 40 + i }), { authorization: 'Bearer sk-json', 'x-request-id': `json-${i}`, 'x-stub-tokens': '12' })
      t.equal(res.statusCode, 200)
      const u = JSON.parse(text).usage
      used += u.prompt_tokens + u.completion_tokens
      t.equal(await accounted(`json-${i}`), u.prompt_tokens + u.completion_tokens, 'access log = reported usage')
      // read from the body, not counted from its text (a JSON body leaves through tryEnd before undici's end)
      t.equal((await proxy.waitLog((x) => x.msg === 'access' && x.req_id === `json-${i}`)).tokens_source, 'reported')
    }
    const p = await remainingAfterProbe('sk-json')
    t.equal(p.remaining, 100000 - used - p.estimate, 'estimate of 40+ output tokens refunded down to the 12 used')
  })

  t.test('OpenAI SSE without include_usage: usage read, the extra chunk never reaches the client', async (t) => {
    const { res, text } = await post('/v1/chat/completions', chatBody({ stream: true }), { authorization: 'Bearer sk-sse', 'x-request-id': 'sse-1' })
    t.equal(res.statusCode, 200)
    t.notMatch(text, /"usage":\{/, 'no usage object in what the client received')
    t.notMatch(text, /"choices":\[\]/, 'no usage-only chunk')
    t.match(text, /data: \[DONE\]/)
    const used1 = await accounted('sse-1')
    const r2 = await post('/v1/chat/completions', chatBody({ stream: true, stream_options: { include_usage: true } }), { authorization: 'Bearer sk-sse', 'x-request-id': 'sse-2' })
    const usageChunk = r2.text.split('\n\n').find((e) => e.includes('"choices":[]'))
    t.ok(usageChunk, 'a client that asked for usage gets it')
    const u = JSON.parse(usageChunk!.slice('data: '.length)).usage
    t.equal(await accounted('sse-2'), u.prompt_tokens + u.completion_tokens)
    const p = await remainingAfterProbe('sk-sse')
    t.equal(p.remaining, 100000 - used1 - (u.prompt_tokens + u.completion_tokens) - p.estimate)
  })

  t.test('Gemini stream with thoughts', async (t) => {
    const body = { contents: [{ parts: [{ text: 'think first' }] }], generationConfig: { maxOutputTokens: 20, thinkingConfig: { thinkingBudget: 8 } } }
    const { res, text } = await post('/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', body, { 'x-goog-api-key': 'sk-gemini', 'x-request-id': 'gem-1' })
    t.equal(res.statusCode, 200)
    const last = text.trim().split(/\r?\n\r?\n/).filter((e) => e.startsWith('data:')).pop()!
    const um = JSON.parse(last.slice(5)).usageMetadata
    t.ok(um.thoughtsTokenCount > 0, 'the stub billed thoughts')
    t.equal(await accounted('gem-1'), um.totalTokenCount, 'prompt + candidates + thoughts')
    // probe on the same bucket through the OpenAI route is another key: probe with a Gemini request instead
    const probeBody = { contents: [{ parts: [{ text: 'probe' }] }], generationConfig: { maxOutputTokens: 5 } }
    const est = promptTokens(readPrompt('gemini', probeBody, '/v1beta/models/gemini-2.5-flash:generateContent')) + 5
    const p = await post('/gemini/v1beta/models/gemini-2.5-flash:generateContent', probeBody, { 'x-goog-api-key': 'sk-gemini' })
    t.equal(Number(p.res.headers['x-ratelimit-remaining-tokens']), 100000 - um.totalTokenCount - est)
  })

  t.test('Qwen native JSON and SSE', async (t) => {
    const body = { model: 'qwen-plus', input: { messages: [{ role: 'user', content: 'hello qwen' }] }, parameters: { max_tokens: 25 } }
    const path = '/qwen/api/v1/services/aigc/text-generation/generation'
    const a = await post(path, body, { authorization: 'Bearer sk-qwen', 'x-request-id': 'qw-1', 'x-stub-tokens': '9' })
    const ua = JSON.parse(a.text).usage
    t.equal(await accounted('qw-1'), ua.input_tokens + ua.output_tokens)
    const b = await post(path, body, { authorization: 'Bearer sk-qwen', 'x-request-id': 'qw-2', 'x-dashscope-sse': 'enable' })
    t.equal(b.res.statusCode, 200)
    const sseUsed = await accounted('qw-2')
    const probe = { model: 'qwen-plus', input: { messages: [{ role: 'user', content: 'p' }] }, parameters: { max_tokens: 3 } }
    const est = promptTokens(readPrompt('qwen-native', probe)) + 3
    const p = await post(path, probe, { authorization: 'Bearer sk-qwen' })
    t.equal(Number(p.res.headers['x-ratelimit-remaining-tokens']), 100000 - ua.input_tokens - ua.output_tokens - sseUsed - est)
  })

  t.test('a stream cut half-way is charged for what was delivered', async (t) => {
    const { res, text } = await post('/v1/chat/completions', chatBody({ stream: true, max_tokens: 40 }), { authorization: 'Bearer sk-cut', 'x-request-id': 'cut-1', 'x-stub-error': 'cut' })
    t.equal(res.statusCode, 200)
    const line = await proxy.waitLog((x) => x.msg === 'access' && x.req_id === 'cut-1')
    t.equal(line.tokens_source, 'counted')
    const delivered = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)).choices[0]?.delta?.content ?? '').join('')
    const { countTokens } = await import('../../src/llm/tokenizer.js')
    t.equal(line.tokens_completion, countTokens(delivered), 'completion = tokens of the text the client got')
    const p = await remainingAfterProbe('sk-cut')
    t.equal(p.remaining, 100000 - (line.tokens_prompt as number) - (line.tokens_completion as number) - p.estimate)
  })

  t.test('an org budget sums its keys', async (t) => {
    const { res } = await post('/v1/chat/completions', chatBody({ max_tokens: 3 }), { authorization: 'Bearer sk-json' })
    const orgRemaining = Number(res.headers['x-ratelimit-remaining-tokens'])
    // the tightest token limit is reported: key-tokens (100k burst) is tighter than org-tokens (1M)
    t.ok(orgRemaining < 100000)
  })
})

t.test('keys: 401 in each provider shape; the key never goes upstream or into logs', async (t) => {
  const seen: string[] = []
  const on = (r: { headers: Record<string, unknown>; url: string }) => seen.push(JSON.stringify(r.headers) + r.url)
  stub.on('request', on)
  const a = await post('/v1/chat/completions', chatBody(), {})
  t.equal(a.res.statusCode, 401)
  t.match(JSON.parse(a.text), { error: { code: 'LEAKY_UNAUTHORIZED', type: 'invalid_request_error' } })
  const b = await post('/v1/chat/completions', chatBody(), { authorization: 'Bearer sk-nope' })
  t.equal(b.res.statusCode, 401)
  t.match(JSON.parse(b.text).error.message, /unknown API key/)
  const g = await post('/gemini/v1beta/models/x:generateContent', { contents: [] }, { 'x-goog-api-key': 'nope' })
  t.equal(g.res.statusCode, 401)
  t.match(JSON.parse(g.text), { error: { code: 401, status: 'UNAUTHENTICATED' } })
  const q = await post('/qwen/api/v1/services/aigc/text-generation/generation', {}, {})
  t.equal(q.res.statusCode, 401)
  t.match(JSON.parse(q.text), { code: 'InvalidApiKey' })
  const ok = await post('/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=sk-gemini', { contents: [{ parts: [{ text: 'hi' }] }] }, {})
  t.equal(ok.res.statusCode, 200, '?key= is accepted')
  stub.off('request', on)
  t.ok(seen.length > 0)
  t.notMatch(seen.join('\n'), /sk-gemini|sk-json|sk-nope/, 'no client key upstream')
  t.match(seen.join('\n'), /upstream-key/, 'the upstream key injected instead')
  t.notMatch(JSON.stringify(proxy.lines), /sk-(json|sse|gemini|qwen|cut|gold|nope)/, 'no client key in any log line')
})

t.test('tiers scale per-key limits', async (t) => {
  const a = await post('/v1/chat/completions', chatBody({ max_tokens: 2 }), { authorization: 'Bearer sk-gold' })
  t.equal(a.res.headers['x-ratelimit-limit-requests'], '20', '5/s × gold scale 4')
  t.equal(a.res.headers['x-ratelimit-limit-tokens'], '400000', 'burst 100000 × 4 (the limit header is the bucket size)')
})

t.test('429 with Retry-After and RateLimit headers naming the limit; denied requests charge nothing', async (t) => {
  const results = await Promise.all(Array.from({ length: 12 }, () => post('/v1/chat/completions', chatBody({ max_tokens: 1 }), { authorization: 'Bearer sk-qwen' })))
  const denied = results.filter((r) => r.res.statusCode === 429)
  t.ok(denied.length >= 6, `${denied.length} of 12 denied by key-rps (burst 5)`)
  const d = denied[0]
  t.match(JSON.parse(d.text), { error: { code: 'LEAKY_RATE_LIMITED', type: 'rate_limit_exceeded' } })
  t.match(JSON.parse(d.text).error.message, /"key-rps"/)
  t.match(String(d.res.headers['retry-after']), /^[1-9]\d*$/)
  t.equal(d.res.headers['ratelimit-policy'], '"key-rps";q=5;w=1')
  t.match(String(d.res.headers.ratelimit), /^"key-rps";r=0;t=\d+$/)
  t.equal(d.res.headers['x-ratelimit-remaining-requests'], '0')
})

t.test('a request whose estimate exceeds a burst is 429 at once, saying so', async (t) => {
  const r = await post('/flood-llm/v1/chat/completions', chatBody({ max_tokens: 5000 }), {})
  t.equal(r.res.statusCode, 429)
  t.match(JSON.parse(r.text), { error: { code: 'LEAKY_OVER_BURST' } })
  t.match(JSON.parse(r.text).error.message, /can never be admitted/)
})

/**
 * Offered load ~1600/s, far above the limits below, paced: an unpaced flood would starve this 2-core machine, and
 * a client stalled longer than a bucket's tolerance loses admissions the limiter did offer. Returns the admitted
 * responses' weight (1 per request, or what `weigh` says) and the time between the first and the last admission.
 */
async function flood(prefix: string, send: () => Promise<{ statusCode: number; text: string }>, weigh: (text: string) => number) {
  let admitted = 0
  const deadline = Date.now() + 3000
  async function loop() {
    while (Date.now() < deadline) {
      const t0 = performance.now()
      const r = await send()
      if (r.statusCode === 200) admitted += weigh(r.text)
      const wait = 10 - (performance.now() - t0)
      if (wait > 0) await new Promise((res) => setTimeout(res, wait))
    }
  }
  await Promise.all(Array.from({ length: 16 }, loop))
  // T from the proxy's own clock: when the first and the last admitted request arrived (log time − duration),
  // so response latency under load does not stretch or shrink the window
  const starts = proxy
    .access()
    .filter((l) => String(l.path).startsWith(prefix) && l.status === 200)
    .map((l) => Date.parse(String(l.time)) - (l.duration_ms as number))
  return { admitted, T: (Math.max(...starts) - Math.min(...starts)) / 1000 }
}

t.test('accuracy across all worker threads: admitted = rate·T + burst (±1%)', async (t) => {
  const { admitted, T } = await flood('/flood/', async () => {
    const res = await request(proxy.url('/flood/__stub/health'))
    return { statusCode: res.statusCode, text: await res.body.text() }
  }, () => 1)
  const expected = 200 * T + 20
  t.ok(Math.abs(admitted - expected) <= expected * 0.01 + 1, `admitted ${admitted} requests, expected ${expected.toFixed(1)} over ${T.toFixed(3)} s`)
})

t.test('token accuracy driven by the stub usage: admitted tokens = rate·T + burst (±1%)', async (t) => {
  const { admitted, T } = await flood('/flood-llm/', async () => {
    const res = await request(proxy.url('/flood-llm/v1/chat/completions'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-stub-tokens': '10' },
      body: JSON.stringify(chatBody({ max_tokens: 10 })),
    })
    return { statusCode: res.statusCode, text: await res.body.text() }
  }, (text) => JSON.parse(text).usage.total_tokens)
  const expected = 2000 * T + 200
  t.ok(Math.abs(admitted - expected) <= expected * 0.01 + 20, `admitted ${admitted} tokens, expected ${expected.toFixed(1)} over ${T.toFixed(3)} s (one request ≈ 20 tokens)`)
})

t.test('a full table answers 503 LEAKY_TABLE_FULL with Retry-After', async (t) => {
  let full: Awaited<ReturnType<typeof request>> | null = null
  for (let i = 0; i < 2000 && full === null; i++) {
    const res = await request(proxy.url('/fill/__stub/health'), { headers: { 'x-forwarded-for': `10.${(i >> 8) & 255}.${i & 255}.1` } })
    if (res.statusCode === 503) full = res
    else await res.body.dump()
  }
  t.ok(full, 'the 1024-slot table filled up')
  t.equal(full!.headers['retry-after'], '1')
  t.match(await full!.body.json(), { error: { code: 'LEAKY_TABLE_FULL' } })
})

t.test("the openai SDK's own retry honours our Retry-After and gets admitted", async (t) => {
  const client = new OpenAI({ apiKey: 'x', baseURL: proxy.url('/sdk/v1'), maxRetries: 4 })
  for (let i = 0; i < 4; i++) {
    const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })
    t.ok(r.choices[0].message.content)
  }
  const limited = proxy.access().filter((l) => typeof l.path === 'string' && (l.path as string).startsWith('/sdk/') && l.status === 429)
  t.ok(limited.length > 0, `${limited.length} 429s were retried by the SDK`)
})
