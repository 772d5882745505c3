// One OpenAI endpoint in front of every provider (README "One endpoint for every provider"): the official openai SDK,
// the same program, against a models route with the stub behind it as Anthropic, Gemini, Qwen and OpenAI. Answers
// parse, the upstream sees the mapped model in its own API, and the usage the client gets is the upstream's: the
// stub is seeded, so the request it saw, sent to it again directly, answers the same and reports the same usage.
import t from 'tap'
import OpenAI from 'openai'
import { request } from 'undici'
import { startProxy, baseConfig, freePort } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { startCountingUpstream } from '../helpers/counting-upstream.js'
import type { StubRequestEvent } from '../../src/stub/server.js'
import net from 'node:net'
import { estimateTokens } from '../../src/llm/estimate.js'
import { shapeOf } from '../../src/llm/prompt.js'

const { stub, origin } = await startStub({ seed: 42 })
t.teardown(() => stub.close())
const refused = await freePort() // nothing listens there: connections are refused
const busy = await startCountingUpstream() // answers 503: a status the default retry rules fail over on
busy.status = 503
t.teardown(() => busy.close())

const proxy = await startProxy(baseConfig(`
upstreams:
  openai: { provider: openai, targets: ["${origin}"] }
  anthropic: { provider: anthropic, targets: ["${origin}"] }   # no anthropic-version: the proxy sends one
  gemini: { provider: gemini, targets: ["${origin}"] }
  qwen: { provider: qwen, targets: ["${origin}/compatible-mode"] }
  down: { provider: openai, targets: ["http://127.0.0.1:${refused}"] }
  busy: { provider: openai, targets: ["${busy.origin}"] }
  guarded: { provider: openai, targets: ["http://127.0.0.1:${refused}"], breaker: { min_requests: 1, failure_ratio: 0.5, window: 10s, cooldown: 60s } }
limits:
  ip-tpm: { per: ip, tokens: 10M/min }
routes:
  - path: /v1/
    upstream: openai
    limits: [ip-tpm]
    models:
      gpt-4o-mini: openai
      "claude-*": anthropic
      "gemini-*": gemini
      "qwen-*": qwen
      sonnet: anthropic/claude-sonnet-4
      fast: gpt-4o-mini
      smart: [down/gpt-4o, gemini/gemini-2.5-pro]
      careful: [guarded/gpt-4o, claude-3-5-haiku]
      patient: [busy/gpt-4o, gemini-2.5-flash]
`))
t.teardown(() => proxy.stop())

const openai = new OpenAI({ apiKey: 'sk-anything', baseURL: proxy.url('/v1'), maxRetries: 0 })

/** The next request the stub receives. */
function nextAtStub(): Promise<StubRequestEvent> {
  return new Promise((resolve) => stub.once('request', resolve))
}

/** Send what the stub saw once more, straight to it: the seeded stub answers the same, with the same usage. */
async function direct(seen: StubRequestEvent): Promise<string> {
  const r = await request(origin + seen.url, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: seen.body })
  return r.body.text()
}

/** The usage a provider's own answer reports, in OpenAI's terms (src/llm/usage.ts convention). */
function nativeUsage(provider: string, body: string): { prompt: number; completion: number; total: number } {
  if (body.startsWith('{')) {
    const j = JSON.parse(body)
    if (provider === 'anthropic') return { prompt: j.usage.input_tokens, completion: j.usage.output_tokens, total: j.usage.input_tokens + j.usage.output_tokens }
    if (provider === 'gemini') {
      const u = j.usageMetadata
      return { prompt: u.promptTokenCount, completion: (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0), total: u.totalTokenCount }
    }
    return { prompt: j.usage.prompt_tokens, completion: j.usage.completion_tokens, total: j.usage.total_tokens }
  }
  // a stream: the last usage the provider reported
  let out = { prompt: -1, completion: -1, total: -1 }
  let input = 0
  for (const line of body.split('\n')) {
    if (!line.startsWith('data:') || line.includes('[DONE]')) continue
    const j = JSON.parse(line.slice(5))
    if (provider === 'anthropic') {
      if (j.type === 'message_start') input = j.message.usage.input_tokens
      if (j.type === 'message_delta') out = { prompt: input, completion: j.usage.output_tokens, total: input + j.usage.output_tokens }
    } else if (provider === 'gemini' && j.usageMetadata) {
      const u = j.usageMetadata
      out = { prompt: u.promptTokenCount, completion: (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0), total: u.totalTokenCount }
    } else if (j.usage) out = { prompt: j.usage.prompt_tokens, completion: j.usage.completion_tokens, total: j.usage.total_tokens }
  }
  return out
}

function nativeText(provider: string, body: string): string {
  const texts: string[] = []
  const take = (j: any) => {
    if (provider === 'anthropic') {
      if (j.type === 'content_block_delta' && j.delta?.text) texts.push(j.delta.text)
      if (j.type === 'message') for (const c of j.content) if (c.type === 'text') texts.push(c.text)
    } else if (provider === 'gemini') {
      for (const c of j.candidates ?? []) for (const p of c.content?.parts ?? []) if (!p.thought && p.text) texts.push(p.text)
    } else {
      for (const c of j.choices ?? []) texts.push(c.message?.content ?? c.delta?.content ?? '')
    }
  }
  if (body.startsWith('{')) take(JSON.parse(body))
  else for (const line of body.split('\n')) if (line.startsWith('data:') && !line.includes('[DONE]')) take(JSON.parse(line.slice(5)))
  return texts.join('')
}

const cases = [
  { model: 'claude-3-5-haiku', provider: 'anthropic', upstreamModel: 'claude-3-5-haiku', path: '/v1/messages' },
  { model: 'sonnet', provider: 'anthropic', upstreamModel: 'claude-sonnet-4', path: '/v1/messages' },
  { model: 'gemini-2.5-flash', provider: 'gemini', upstreamModel: 'gemini-2.5-flash', path: '/v1beta/models/gemini-2.5-flash:generateContent' },
  { model: 'qwen-plus', provider: 'qwen', upstreamModel: 'qwen-plus', path: '/compatible-mode/v1/chat/completions' },
  { model: 'fast', provider: 'openai', upstreamModel: 'gpt-4o-mini', path: '/v1/chat/completions' },
]

for (const c of cases) {
  t.test(`${c.model} → ${c.provider}: chat, the same program`, async (t) => {
    const at = nextAtStub()
    const r = await openai.chat.completions.create({
      model: c.model,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Why is the sky blue?' }],
      max_tokens: 24,
      temperature: 0.2,
    }, { headers: { 'x-request-id': `chat-${c.model}-${process.pid}` } })
    const seen = await at
    t.equal(seen.url.split('?')[0], c.path, 'the upstream was asked in its own API')
    const sent = JSON.parse(seen.body.toString())
    if (c.provider !== 'gemini') t.equal(sent.model, c.upstreamModel, 'the upstream sees the mapped model')
    t.equal(r.object, 'chat.completion')
    t.equal(r.choices[0].message.role, 'assistant')
    t.ok((r.choices[0].message.content ?? '').length > 0, 'text')
    t.ok(['stop', 'length'].includes(r.choices[0].finish_reason), `finish_reason ${r.choices[0].finish_reason}`)
    const again = await direct(seen)
    t.equal(r.choices[0].message.content, nativeText(c.provider, again), 'the text the upstream answered')
    const u = nativeUsage(c.provider, again)
    t.same({ prompt: r.usage?.prompt_tokens, completion: r.usage?.completion_tokens, total: r.usage?.total_tokens }, u, 'usage is the upstream\'s')
    const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === `chat-${c.model}-${process.pid}`)
    t.equal(line.status, 200)
    t.equal(line.upstream, c.provider)
    t.equal(line.tokens_total, u.total, 'the access line accounts the upstream\'s tokens')
    // the limits were pre-charged with the target's own counting of the body it was sent
    const upstreamPath = seen.url.split('?')[0]
    const e = estimateTokens(shapeOf(c.provider, upstreamPath), sent, upstreamPath, { dashscopeSse: false }, 1024)
    t.equal(line.tokens_estimate, e.total, 'estimated with the target\'s accounting')
  })

  t.test(`${c.model} → ${c.provider}: stream with include_usage`, async (t) => {
    const at = nextAtStub()
    const stream = await openai.chat.completions.create({
      model: c.model,
      messages: [{ role: 'user', content: 'Count to twenty' }],
      max_tokens: 30,
      stream: true,
      stream_options: { include_usage: true },
    })
    let text = ''
    let usage: OpenAI.CompletionUsage | null | undefined
    let chunks = 0
    let finish: string | null = null
    for await (const ch of stream) {
      chunks++
      text += ch.choices[0]?.delta?.content ?? ''
      finish = ch.choices[0]?.finish_reason ?? finish
      if (ch.usage) usage = ch.usage
    }
    const seen = await at
    t.ok(chunks > 2, `${chunks} chunks`)
    t.ok(finish !== null, 'a finish reason')
    const again = await direct(seen)
    t.equal(text, nativeText(c.provider, again), 'every delta, in order')
    const u = nativeUsage(c.provider, again)
    t.same({ prompt: usage?.prompt_tokens, completion: usage?.completion_tokens, total: usage?.total_tokens }, u, 'the usage chunk is the upstream\'s')
  })

  t.test(`${c.model} → ${c.provider}: tools and a tool result`, async (t) => {
    const at = nextAtStub()
    const r = await openai.chat.completions.create({
      model: c.model,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '18°C and sunny' },
      ],
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'current weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }],
      max_tokens: 16,
    })
    const sent = JSON.parse((await at).body.toString())
    t.ok((r.choices[0].message.content ?? '').length > 0, 'the answer parses')
    if (c.provider === 'anthropic') {
      t.same(sent.tools[0], { name: 'get_weather', description: 'current weather', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } })
      t.same(sent.messages[1].content[0], { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } })
      t.same(sent.messages[2].content[0], { type: 'tool_result', tool_use_id: 'call_1', content: '18°C and sunny' })
    } else if (c.provider === 'gemini') {
      t.equal(sent.tools[0].functionDeclarations[0].name, 'get_weather')
      t.same(sent.contents[1].parts[0], { functionCall: { name: 'get_weather', args: { city: 'Paris' } } })
      t.same(sent.contents[2].parts[0], { functionResponse: { name: 'get_weather', response: { content: '18°C and sunny' } } })
    } else {
      t.equal(sent.tools[0].function.name, 'get_weather', 'OpenAI-shaped: the tools as sent')
      t.equal(sent.messages[2].tool_call_id, 'call_1')
    }
  })
}

t.test('GET /v1/models lists the configured names', async (t) => {
  const ids: string[] = []
  for await (const m of openai.models.list()) ids.push(m.id)
  t.same(ids, ['gpt-4o-mini', 'claude-*', 'gemini-*', 'qwen-*', 'sonnet', 'fast', 'smart', 'careful', 'patient'])
})

t.test('an unknown model: 404 model_not_found, OpenAI-shaped, nothing forwarded', async (t) => {
  let forwarded = false
  const onReq = () => (forwarded = true)
  stub.on('request', onReq)
  t.teardown(() => stub.off('request', onReq))
  const err = await openai.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e)
  t.ok(err instanceof OpenAI.NotFoundError, 'the SDK\'s NotFoundError')
  t.equal(err.status, 404)
  t.equal(err.code, 'model_not_found')
  t.equal(err.param, 'model')
  t.notMatch(err.message, /gemini|claude|anthropic|qwen|127\.0\.0\.1/, 'lists nothing of the table')
  t.notOk(forwarded)
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.error === 'LEAKY_MODEL_NOT_FOUND')
  t.equal(line.status, 404)
})

t.test('a field the provider cannot express: 400 naming it', async (t) => {
  const err = await openai.chat.completions.create({ model: 'claude-3-5-haiku', messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_object' } }).catch((e) => e)
  t.ok(err instanceof OpenAI.BadRequestError)
  t.match(err.message, /response_format/)
  t.equal(err.code, 'LEAKY_UNTRANSLATABLE')
  const err2 = await openai.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }], logprobs: true }).catch((e) => e)
  t.equal(err2.status, 400)
  t.match(err2.message, /logprobs/)
})

t.test('an upstream error: its status, OpenAI-shaped body', async (t) => {
  for (const model of ['claude-3-5-haiku', 'gemini-2.5-flash']) {
    const err = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-stub-error': '429' } }).catch((e) => e)
    t.ok(err instanceof OpenAI.RateLimitError, `${model}: RateLimitError`)
    t.equal(err.status, 429)
    t.ok(typeof err.error?.message === 'string' && err.error.message.length > 0, 'the provider\'s message')
  }
})

t.test('fallback across providers: the first refuses connections, Gemini answers, translated', async (t) => {
  const r = await openai.chat.completions.create({ model: 'smart', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 })
  t.ok((r.choices[0].message.content ?? '').length > 0)
  t.ok((r.usage?.total_tokens ?? 0) > 0)
  const line = await proxy.waitLog((l) => l.msg === 'access' && Array.isArray(l.models) && (l.models as string[])[0] === 'down/gpt-4o' && l.status === 200)
  t.same(line.models, ['down/gpt-4o', 'gemini/gemini-2.5-pro'], 'both attempts')
  t.equal(line.attempts, 2)
  t.equal(line.upstream, 'gemini')
  t.match(String(line.detail), /attempt 1 \(down\) failed/)
  t.equal(line.tokens_total, r.usage?.total_tokens)

  const s = await openai.chat.completions.create({ model: 'smart', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10, stream: true, stream_options: { include_usage: true } })
  let text = ''
  let usage: OpenAI.CompletionUsage | null | undefined
  for await (const ch of s) {
    text += ch.choices[0]?.delta?.content ?? ''
    if (ch.usage) usage = ch.usage
  }
  t.ok(text.length > 0 && (usage?.total_tokens ?? 0) > 0, 'a translated stream after the fallback')
})

t.test('a translated stream cut by the upstream: an OpenAI error event, usage counted from what was delivered', async (t) => {
  for (const model of ['claude-3-5-haiku', 'gemini-2.5-flash']) {
    const res = await request(proxy.url('/v1/chat/completions'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-stub-error': 'cut', 'x-stub-tokens': '40', 'x-request-id': `cut-${model}-${process.pid}` },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 40, stream: true, stream_options: { include_usage: true } }),
    })
    t.equal(res.statusCode, 200)
    const body = await res.body.text()
    const events = body.split('\n\n').filter((e) => e !== '')
    t.ok(events.every((e) => e.startsWith('data: ')), `${model}: OpenAI SSE only`)
    const last = JSON.parse(events[events.length - 1].slice(6))
    t.ok(last.error, `${model}: the last event is an error`)
    const usageEv = JSON.parse(events[events.length - 2].slice(6))
    t.ok(usageEv.usage, 'the usage chunk comes before it')
    t.notMatch(body, /\[DONE\]/)
    const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === `cut-${model}-${process.pid}`)
    t.equal(line.tokens_source, 'counted')
    t.equal(line.tokens_completion, usageEv.usage.completion_tokens, 'the client and the account agree')
    t.ok(usageEv.usage.completion_tokens > 0 && usageEv.usage.completion_tokens < 40, 'counted from what was delivered')
  }
})

t.test('translated events are relayed as the upstream produces them, not buffered', async (t) => {
  for (const model of ['claude-3-5-haiku', 'gemini-2.5-flash']) {
    const res = await request(proxy.url('/v1/chat/completions'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-stub-tps': '40', 'x-stub-tokens': '40' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 40, stream: true }),
    })
    const arrivals: number[] = []
    for await (const c of res.body) if (String(c).includes('data:')) arrivals.push(Date.now())
    t.ok(arrivals.length >= 5, `${model}: ${arrivals.length} separate reads`)
    t.ok(arrivals[arrivals.length - 1] - arrivals[0] >= 300, `${model}: spread over the stub's pacing`)
  }
})

t.test('a client that stops reading a translated stream for a while still gets all of it', async (t) => {
  const at = nextAtStub()
  const body = JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'a long story' }], max_tokens: 60000, stream: true, stream_options: { include_usage: true } })
  const raw = await new Promise<string>((resolve, reject) => {
    const sock = net.connect(proxy.port, '127.0.0.1', () => {
      sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-stub-tokens: 60000\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
      // not reading for a while: what the socket cannot take waits (uWS refuses, the upstream read pauses); nothing is lost
      sock.pause()
      setTimeout(() => sock.resume(), 1500)
    })
    const parts: Buffer[] = []
    sock.on('data', (d) => parts.push(d))
    sock.on('end', () => resolve(Buffer.concat(parts).toString()))
    sock.on('error', reject)
  })
  const seen = await at
  const bodyStart = raw.indexOf('\r\n\r\n') + 4
  t.match(raw.slice(0, bodyStart), /transfer-encoding: chunked/i)
  // de-chunk
  let rest = raw.slice(bodyStart)
  let sse = ''
  for (;;) {
    const nl = rest.indexOf('\r\n')
    const n = parseInt(rest.slice(0, nl), 16)
    if (!(n > 0)) break
    const chunk = Buffer.from(rest.slice(nl + 2))
    sse += chunk.subarray(0, n).toString()
    rest = chunk.subarray(n + 2).toString()
  }
  let text = ''
  let usage: any = null
  for (const ev of sse.split('\n\n')) {
    if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue
    const c = JSON.parse(ev.slice(6))
    text += c.choices[0]?.delta?.content ?? ''
    if (c.usage) usage = c.usage
  }
  t.ok(sse.endsWith('data: [DONE]\n\n'), `the whole stream (${(sse.length / 1048576).toFixed(1)} MB)`)
  const again = await direct(seen)
  t.equal(text, nativeText('gemini', again), `every delta (${text.length} characters)`)
  t.equal(usage?.total_tokens, nativeUsage('gemini', again).total)
})

t.test('an open breaker sends the request to the next model of the list at once', async (t) => {
  // breakers are per worker thread (2 here): a request that meets a closed one fails over (2 attempts) and opens it;
  // by the third request at the latest, one meets an open breaker and goes straight to Anthropic
  for (let n = 1; n <= 3; n++) {
    const id = `careful-${n}-${process.pid}`
    const r = await openai.chat.completions.create({ model: 'careful', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }, { headers: { 'x-request-id': id } })
    t.ok((r.choices[0].message.content ?? '').length > 0, `request ${n} answered`)
    const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === id)
    t.same(line.models, ['guarded/gpt-4o', 'anthropic/claude-3-5-haiku'], 'both choices on the access line')
    t.equal(line.upstream, 'anthropic')
    if (line.attempts === undefined) {
      t.pass(`request ${n}: one attempt, the open breaker was not tried`)
      return
    }
    t.equal(line.attempts, 2, `request ${n}: refused, then Anthropic (this worker's breaker opens)`)
  }
  t.fail('no request met an open breaker')
})

t.test('a first choice answering 503 (retry.on) falls back to Gemini; the 503 never reaches the client', async (t) => {
  const r = await openai.chat.completions.create({ model: 'patient', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 })
  t.ok((r.choices[0].message.content ?? '').length > 0)
  t.equal(busy.calls.length, 1, 'the busy upstream was asked once')
  t.equal(busy.calls[0].body?.model, 'gpt-4o', 'with its mapped model')
  const line = await proxy.waitLog((l) => l.msg === 'access' && Array.isArray(l.models) && (l.models as string[])[0] === 'busy/gpt-4o')
  t.same(line.models, ['busy/gpt-4o', 'gemini/gemini-2.5-flash'])
  t.equal(line.status, 200)
  t.equal(line.attempts, 2)
  t.match(String(line.detail), /attempt 1 \(busy\) failed: status 503/)
})
