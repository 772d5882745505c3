// Compressed answers on metered routes, over real sockets: the proxy asks its upstream for `Accept-Encoding:
// identity`; an upstream that compresses anyway (gzip, x-gzip, zlib and raw deflate, br; the compressed stream cut
// across several writes) is decoded toward the client — no Content-Encoding, the bytes an identity upstream would
// have sent (less the usage chunk the proxy asked for itself) — and metered exactly; a body that does not decode
// ends the response the way an upstream failure does and is charged for what decoded (partial); a coding the proxy
// does not decode is relayed as it came with the estimate kept charged (unknown), and so is usage it cannot trust.
import t, { type Test } from 'tap'
import { request, fetch } from 'undici'
import { startProxy, baseConfig, scrapeMetrics, metricValue, type LogLine } from '../helpers/proxy.js'
import { startCompressedUpstream, GEMINI_USAGE } from '../helpers/compressed-upstream.js'
import { countTokens } from '../../src/llm/tokenizer.js'

const up = await startCompressedUpstream()
t.teardown(() => up.close())

// slow-draining token budgets (1000/month) with a big burst: over a run they drain < 0.01 token, so the remaining
// tokens a response reports are exactly burst − what was charged. One key per test keeps their buckets apart.
const BURST = 100000
const KEYS = ['json', 'sse', 'asked', 'gemini', 'trunc', 'garbage', 'zstd', 'invalid', 'slow', 'abort']
const proxy = await startProxy(
  baseConfig(`limits:
  tokens: { per: key, tokens: 1000/month, burst: ${BURST} }
keys:
${KEYS.map((k) => `  - { id: k-${k}, key: sk-${k} }`).join('\n')}
upstreams:
  openai: { provider: openai, targets: ["${up.origin}"] }
  gemini: { provider: gemini, targets: ["${up.origin}"] }
routes:
  - { path: /v1/, upstream: openai, auth: key, limits: [tokens] }
  - { path: /gemini/, upstream: gemini, strip_prefix: true, auth: key, limits: [tokens] }
`),
)
t.teardown(() => proxy.stop())

const CHAT = '/v1/chat/completions'
const GEMINI = '/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent'
const chat = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'tell me about leaky buckets' }], max_tokens: 300, ...extra })
const geminiBody = JSON.stringify({ contents: [{ parts: [{ text: 'tell me about leaky buckets' }] }], generationConfig: { maxOutputTokens: 300 } })

let n = 0
interface Answer {
  id: string
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
  /** the client's read failed (the response was cut) */
  cut: string
  line: LogLine
}

function auth(key: string, path: string): Record<string, string> {
  return path.startsWith('/gemini/') ? { 'x-goog-api-key': `sk-${key}` } : { authorization: `Bearer sk-${key}` }
}

/** POST through the proxy with undici's request (which sends no Accept-Encoding); waits for the access line. */
async function post(key: string, path: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const id = `z-${++n}`
  const res = await request(proxy.url(path), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id, ...auth(key, path), ...headers },
    body,
  })
  const parts: Buffer[] = []
  let cut = ''
  try {
    for await (const c of res.body) parts.push(c as Buffer)
  } catch (err) {
    cut = (err as Error).message
  }
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === id)
  return { id, status: res.statusCode, headers: res.headers, body: Buffer.concat(parts), cut, line }
}

/** The same with fetch, which asks for compression (and would decode a Content-Encoding it was sent). */
async function fetchPost(key: string, path: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const id = `z-${++n}`
  const res = await fetch(proxy.url(path), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip, deflate, br', 'x-request-id': id, ...auth(key, path), ...headers },
    body,
  })
  const buf = Buffer.from(await res.arrayBuffer())
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === id)
  const h: Record<string, string> = {}
  res.headers.forEach((v, k) => (h[k] = v))
  return { id, status: res.status, headers: h, body: buf, cut: '', line }
}

/** Tokens left on `key`'s bucket, from a following identity request's rate-limit header, less that request's own estimate. */
async function remaining(t: Test, key: string): Promise<number> {
  const a = await post(key, CHAT, chat({ max_tokens: 7 }), { 'x-up-coding': 'identity' })
  t.equal(a.status, 200)
  return Number(a.headers['x-ratelimit-remaining-tokens']) + (a.line.tokens_estimate as number)
}

const OPENAI_LINE = { tokens_prompt: 37, tokens_completion: 23, tokens_total: 60, tokens_cached: 5, tokens_thoughts: 4, tokens_source: 'reported' }

function decodedWell(t: Test, a: Answer, want: Buffer, what: string): void {
  const seen = up.request(a.id)
  t.equal(seen.headers['accept-encoding'], 'identity', `${what}: the upstream was asked for identity`)
  t.equal(a.status, 200, `${what}: 200`)
  t.equal(a.headers['content-encoding'], undefined, `${what}: no Content-Encoding to the client`)
  t.equal(a.cut, '', `${what}: read to its end`)
  t.ok(a.body.equals(want), `${what}: the client got the uncompressed bytes`)
  t.equal(a.line.error, null, `${what}: no error logged`)
}

const ALL = ['gzip', 'x-gzip', 'deflate', 'deflate-raw', 'br']

t.test('OpenAI JSON, compressed any way, reaches both clients decoded and metered exactly', async (t) => {
  for (const coding of ALL) {
    for (const via of [post, fetchPost]) {
      const what = `${coding} via ${via === post ? 'request' : 'fetch'}`
      const a = await via('json', CHAT, chat(), { 'x-up-coding': coding })
      decodedWell(t, a, up.request(a.id).plain, what)
      t.match(a.line, OPENAI_LINE, `${what}: the access line has the upstream's usage`)
    }
  }
  // a zlib header split over two reads: the first byte alone cannot tell zlib-wrapped from raw deflate
  for (const coding of ['deflate', 'deflate-raw']) {
    const a = await post('json', CHAT, chat(), { 'x-up-coding': coding, 'x-up-first': '1' })
    decodedWell(t, a, up.request(a.id).plain, `${coding}, 1-byte first write`)
  }
  t.equal(await remaining(t, 'json'), BURST - 12 * 60, 'the bucket was charged the reported total of each, no more')
})

t.test('OpenAI SSE: decoded, the injected usage chunk stripped byte-exact, usage read', async (t) => {
  for (const coding of ALL) {
    for (const via of [post, fetchPost]) {
      const what = `${coding} via ${via === post ? 'request' : 'fetch'}`
      const a = await via('sse', CHAT, chat({ stream: true }), { 'x-up-coding': coding, 'x-up-events': '12' })
      const seen = up.request(a.id)
      t.match(JSON.parse(seen.body), { stream_options: { include_usage: true } }, `${what}: the proxy asked for usage`)
      t.ok(seen.usageEvent !== '' && seen.plain.includes(seen.usageEvent), `${what}: the upstream sent the usage-only chunk`)
      const want = Buffer.from(seen.plain.toString().replace(seen.usageEvent, ''))
      decodedWell(t, a, want, what)
      t.match(String(a.headers['content-type']), /^text\/event-stream/)
      t.match(a.line, OPENAI_LINE, `${what}: usage from the stripped chunk`)
    }
  }
  t.equal(await remaining(t, 'sse'), BURST - 10 * 60)
})

t.test('OpenAI SSE whose client asked for usage: every byte kept', async (t) => {
  for (const coding of ['gzip', 'br']) {
    const a = await post('asked', CHAT, chat({ stream: true, stream_options: { include_usage: true } }), { 'x-up-coding': coding })
    const seen = up.request(a.id)
    decodedWell(t, a, seen.plain, coding)
    t.ok(a.body.includes(seen.usageEvent), 'the usage chunk reached the client')
    t.match(a.line, OPENAI_LINE)
  }
  t.equal(await remaining(t, 'asked'), BURST - 2 * 60)
})

t.test('Gemini streamGenerateContent as a JSON array: decoded, usage from its last element', async (t) => {
  const GEMINI_LINE = { tokens_prompt: 19, tokens_completion: 38, tokens_thoughts: 7, tokens_tool_prompt: 3, tokens_total: 60, tokens_source: 'reported', model: 'gemini-2.5-flash-001' }
  for (const coding of ['gzip', 'deflate', 'deflate-raw', 'br']) {
    for (const via of [post, fetchPost]) {
      const what = `${coding} via ${via === post ? 'request' : 'fetch'}`
      const a = await via('gemini', GEMINI, geminiBody, { 'x-up-coding': coding, 'x-up-events': '5' })
      decodedWell(t, a, up.request(a.id).plain, what)
      t.match(a.line, GEMINI_LINE, what)
    }
  }
  t.equal(GEMINI_USAGE.totalTokenCount, 60)
  const probe = await post('gemini', GEMINI, geminiBody, { 'x-up-coding': 'identity' })
  t.equal(Number(probe.headers['x-ratelimit-remaining-tokens']) + (probe.line.tokens_estimate as number), BURST - 8 * 60)
})

t.test('many compressed answers at once, both clients, every coding: each decoded and charged exactly', async (t) => {
  const jobs: Array<Promise<{ a: Answer; sse: boolean }>> = []
  for (let i = 0; i < 24; i++) {
    const coding = ALL[i % ALL.length]
    const via = i % 2 === 0 ? post : fetchPost
    const sse = i % 3 === 0
    jobs.push(via('sse', CHAT, sse ? chat({ stream: true }) : chat(), { 'x-up-coding': coding, 'x-up-events': '30' }).then((a) => ({ a, sse })))
  }
  const before = await remaining(t, 'sse')
  for (const { a, sse } of await Promise.all(jobs)) {
    const seen = up.request(a.id)
    decodedWell(t, a, sse ? Buffer.from(seen.plain.toString().replace(seen.usageEvent, '')) : seen.plain, `${a.id} ${seen.headers['x-up-coding']}${sse ? ' SSE' : ''}`)
    t.match(a.line, OPENAI_LINE)
  }
  // `before` was read while some of them were still charged their estimate: read again once all are accounted
  t.ok(before <= BURST - 10 * 60 - 7)
  t.equal(await remaining(t, 'sse'), BURST - 10 * 60 - 24 * 60 - 2 * 60, 'each charged its reported 60 (and the two probes theirs)')
})

/** The 'response does not decode' lines logged for a request. */
const undecodable = (id: string) => proxy.lines.filter((l) => l.msg === 'response does not decode' && l.req_id === id)

t.test('a truncated gzip body: the client keeps what decoded, usage partial, logged once, the proxy serves on', async (t) => {
  const before = metricValue(await scrapeMetrics(proxy), 'leaky_llm_usage_partial_total', 'upstream="openai"') || 0

  // JSON: the response had started, so it is cut
  const a = await post('trunc', CHAT, chat(), { 'x-up-fault': 'truncate' })
  const seenA = up.request(a.id)
  t.equal(a.status, 200)
  t.not(a.cut, '', `the client saw the response cut (${a.cut})`)
  t.ok(seenA.plain.subarray(0, a.body.length).equals(a.body), `what reached the client (${a.body.length} of ${seenA.plain.length} bytes) is the start of the body`)
  // counted from the text that decoded: the answer's content up to the cut
  const partial = /"content":"([^"]*)/.exec(a.body.toString())
  t.ok(partial !== null, 'the cut is past the start of the content')
  t.match(a.line, { error: 'LEAKY_UPSTREAM_INVALID', tokens_source: 'partial', tokens_completion: countTokens(partial![1]) })
  t.match(a.line.detail, /gzip body does not decode/)
  t.equal(undecodable(a.id).length, 1, 'one log line')
  t.match(undecodable(a.id)[0], { level: 'warn', coding: 'gzip', upstream: 'openai' })

  // SSE: what decoded, then a closing error event
  const b = await post('trunc', CHAT, chat({ stream: true }), { 'x-up-fault': 'truncate', 'x-up-events': '40' })
  const seenB = up.request(b.id)
  t.equal(b.status, 200)
  t.equal(b.cut, '', 'an SSE stream ends cleanly')
  const text = b.body.toString()
  const ERR = 'event: error\ndata: {"error":{"message":"upstream stream failed","type":"upstream_error","code":"LEAKY_UPSTREAM_INVALID"}}\n\n'
  t.ok(text.endsWith(ERR), 'a closing error event')
  const delivered = text.slice(0, -ERR.length)
  t.ok(delivered.length > 0 && seenB.plain.toString().startsWith(delivered), `the events before it are the upstream's (${delivered.length} bytes)`)
  const content = delivered.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)).choices[0]?.delta?.content ?? '').join('')
  t.match(b.line, { error: 'LEAKY_UPSTREAM_INVALID', tokens_source: 'partial', tokens_completion: countTokens(content) })
  t.equal(undecodable(b.id).length, 1)

  const charged = (a.line.tokens_total as number) + (b.line.tokens_total as number)
  t.equal(await remaining(t, 'trunc'), BURST - charged, 'the bucket charged what decoded')
  const m = await scrapeMetrics(proxy)
  t.equal(metricValue(m, 'leaky_llm_usage_partial_total', 'upstream="openai"'), before + 2, 'leaky_llm_usage_partial_total counts both')
  t.equal(proxy.child.exitCode, null, 'no crash')
})

t.test('garbage labelled gzip: nothing decodes — a JSON client gets a clean 502, an SSE client an error event', async (t) => {
  const a = await post('garbage', CHAT, chat(), { 'x-up-fault': 'garbage' })
  t.equal(a.status, 502)
  t.equal(a.cut, '')
  t.match(JSON.parse(a.body.toString()), { error: { code: 'LEAKY_UPSTREAM_INVALID' } })
  t.match(a.line, { status: 502, error: 'LEAKY_UPSTREAM_INVALID', tokens_source: 'partial', tokens_completion: 0 })
  t.equal(undecodable(a.id).length, 1)

  const b = await post('garbage', CHAT, chat({ stream: true }), { 'x-up-fault': 'garbage', 'x-up-coding': 'br' })
  t.equal(b.status, 200)
  t.match(b.body.toString(), /^event: error\ndata: \{"error":\{"message":"upstream stream failed","type":"upstream_error","code":"LEAKY_UPSTREAM_INVALID"\}\}\n\n$/)
  t.match(b.line, { error: 'LEAKY_UPSTREAM_INVALID', tokens_source: 'partial', tokens_completion: 0 })
  t.match(undecodable(b.id), [{ coding: 'br' }])

  // nothing was delivered: the prompt (as estimated) is what the bucket keeps
  t.equal(await remaining(t, 'garbage'), BURST - (a.line.tokens_prompt as number) - (b.line.tokens_prompt as number))
  const c = await post('garbage', CHAT, chat(), { 'x-up-coding': 'gzip' })
  decodedWell(t, c, up.request(c.id).plain, 'the next request')
})

t.test('a compressed body that decodes to no bytes: an empty 200, headers and all', async (t) => {
  for (const coding of ['gzip', 'deflate', 'br']) {
    const a = await post('garbage', CHAT, chat(), { 'x-up-fault': 'empty', 'x-up-coding': coding })
    t.ok(up.request(a.id).wire.length > 0, `${coding}: ${up.request(a.id).wire.length} compressed bytes`)
    decodedWell(t, a, Buffer.alloc(0), coding)
    t.equal(a.headers['content-type'], 'application/json')
    t.match(a.line, { status: 200, tokens_source: 'counted', tokens_completion: 0, bytes_out: 0 })
  }
})

t.test('a Content-Encoding the proxy does not decode: relayed as it came, usage unknown, the estimate stays charged', async (t) => {
  const before = metricValue(await scrapeMetrics(proxy), 'leaky_llm_usage_unknown_total', 'reason="encoding"') || 0
  const estimates: number[] = []
  const workers = new Set<unknown>()
  for (const [coding, header] of [['zstd', 'zstd'], ['list', 'gzip, br'], ['twice', 'gzip, br']] as const) {
    for (const body of [chat(), chat({ stream: true })]) {
      const a = await post('zstd', CHAT, body, { 'x-up-coding': coding })
      const seen = up.request(a.id)
      t.equal(seen.headers['accept-encoding'], 'identity')
      t.equal(a.status, 200)
      const ce = a.headers['content-encoding']
      t.equal(Array.isArray(ce) ? ce.join(', ') : ce, header, `${coding}: Content-Encoding relayed`)
      t.ok(a.body.equals(seen.wire), `${coding}: the bytes relayed unchanged`)
      t.match(a.line, { tokens_source: 'unknown', error: null })
      t.equal(a.line.tokens_prompt, undefined, 'no usage numbers')
      estimates.push(a.line.tokens_estimate as number)
      workers.add(a.line.worker)
    }
  }
  t.equal(await remaining(t, 'zstd'), BURST - estimates.reduce((x, y) => x + y), 'the bucket keeps each estimate')
  const m = await scrapeMetrics(proxy)
  t.equal(metricValue(m, 'leaky_llm_usage_unknown_total', 'reason="encoding"'), before + 6, 'leaky_llm_usage_unknown_total{reason="encoding"}')
  const warned = proxy.lines.filter((l) => l.msg === 'usage unknown' && l.reason === 'encoding')
  // once per worker thread that met it, not once per response
  t.same(warned.map((l) => l.worker).sort(), [...workers].sort(), `${warned.length} warning(s) for 6 responses, one per worker thread that served them`)
  t.match(warned[0], { level: 'warn', upstream: 'openai', detail: /Content-Encoding/ })
})

t.test('usage of the wrong type or negative: unknown, reason invalid, the estimate stays charged', async (t) => {
  const before = metricValue(await scrapeMetrics(proxy), 'leaky_llm_usage_unknown_total', 'reason="invalid"') || 0
  const estimates: number[] = []
  const workers = new Set<unknown>()
  for (const usage of ['string', 'negative']) {
    for (const body of [chat(), chat({ stream: true })]) {
      const a = await post('invalid', CHAT, body, { 'x-up-usage': usage, 'x-up-coding': 'gzip' })
      const seen = up.request(a.id)
      t.match(seen.usage, { prompt_tokens: usage === 'string' ? '12' : -5 })
      t.equal(a.status, 200)
      t.equal(a.headers['content-encoding'], undefined, 'still decoded')
      t.match(a.line, { tokens_source: 'unknown', error: null })
      t.equal(a.line.tokens_total, undefined)
      estimates.push(a.line.tokens_estimate as number)
      workers.add(a.line.worker)
    }
  }
  t.equal(await remaining(t, 'invalid'), BURST - estimates.reduce((x, y) => x + y))
  const m = await scrapeMetrics(proxy)
  t.equal(metricValue(m, 'leaky_llm_usage_unknown_total', 'reason="invalid"'), before + 4)
  const warned = proxy.lines.filter((l) => l.msg === 'usage unknown' && l.reason === 'invalid')
  t.same(warned.map((l) => l.worker).sort(), [...workers].sort(), `${warned.length} warning(s) for 4 responses, one per worker thread that served them`)
  t.match(warned[0], { level: 'warn', upstream: 'openai', detail: /wrong type or negative/ })
})

t.test('a slow reader of a large compressed SSE stream gets all of it', async (t) => {
  // ~6 MB of events decoded from ~100 KB of gzip: the decoder must wait for the client, not buffer ahead
  const id = `z-${++n}`
  const res = await request(proxy.url(CHAT), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id, authorization: 'Bearer sk-slow', 'x-up-events': '12000', 'x-up-words': '60' },
    body: chat({ stream: true }),
  })
  t.equal(res.statusCode, 200)
  const parts: Buffer[] = []
  let since = 0
  for await (const c of res.body) {
    parts.push(c as Buffer)
    since += (c as Buffer).length
    // stop reading for a moment every 512 KB: the proxy's writes to this socket back up meanwhile
    if (since > 512 * 1024) {
      since = 0
      await new Promise((r) => setTimeout(r, 25))
    }
  }
  const seen = up.request(id)
  const got = Buffer.concat(parts)
  t.ok(seen.plain.length > 5_000_000, `${seen.plain.length} bytes decoded from ${seen.wire.length} compressed`)
  t.ok(got.equals(Buffer.from(seen.plain.toString().replace(seen.usageEvent, ''))), `all ${got.length} bytes, in order`)
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === id)
  t.match(line, { ...OPENAI_LINE, status: 200, error: null, bytes_out: got.length })
})

t.test('a slow reader that gives up half-way through a large compressed stream: 499, the proxy serves on', async (t) => {
  const id = `z-${++n}`
  const res = await request(proxy.url(CHAT), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id, authorization: 'Bearer sk-slow', 'x-up-events': '12000', 'x-up-words': '60' },
    body: chat({ stream: true }),
  })
  let got = 0
  for await (const c of res.body) {
    got += (c as Buffer).length
    if (got > 2 * 1024 * 1024) break
    if (got % (256 * 1024) < (c as Buffer).length) await new Promise((r) => setTimeout(r, 10))
  }
  res.body.destroy()
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === id)
  // charged what it was sent: the usage chunk never came
  t.match(line, { status: 499, error: 'LEAKY_CLIENT_CLOSED', tokens_source: 'counted' })
  // (another key: the 2 MB of text delivered cost more tokens than this key's burst)
  const next = await post('abort', CHAT, chat({ stream: true }), { 'x-up-coding': 'gzip' })
  decodedWell(t, next, Buffer.from(up.request(next.id).plain.toString().replace(up.request(next.id).usageEvent, '')), 'the next request')
})

t.test('a client that goes away mid-compressed-stream aborts the upstream (logged as 499)', async (t) => {
  const id = `z-${++n}`
  const aborted = new Promise<{ headers: Record<string, unknown> }>((resolve) => {
    const on = (s: { headers: Record<string, unknown> }) => {
      if (s.headers['x-request-id'] !== id) return
      up.off('aborted', on)
      resolve(s)
    }
    up.on('aborted', on)
  })
  const res = await request(proxy.url(CHAT), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id, authorization: 'Bearer sk-abort', 'x-up-hold': '3' },
    body: chat({ stream: true }),
  })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-encoding'], undefined)
  let first = ''
  for await (const c of res.body) {
    first = String(c)
    break // the first decoded events, then go away
  }
  res.body.destroy()
  t.match(first, /^data: \{"id":"chatcmpl-z1"/, 'decoded events arrived before the abort')
  await aborted
  t.ok(up.request(id).aborted, 'the upstream saw the abort')
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === id)
  t.match(line, { status: 499, error: 'LEAKY_CLIENT_CLOSED' })
  const next = await post('abort', CHAT, chat(), { 'x-up-coding': 'br' })
  decodedWell(t, next, up.request(next.id).plain, 'the next request')
})

t.test('no response went without its access line, and none failed to decode unannounced', async (t) => {
  t.equal(proxy.child.exitCode, null)
  t.equal(proxy.lines.filter((l) => l.level === 'error' || l.level === 'fatal').length, 0, 'no error-level log line')
})
