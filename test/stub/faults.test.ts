// Error injection with x-stub-error: provider-shaped statuses, a TCP reset, a stalled stream, a cut stream, and
// the 'aborted' event a proxy test relies on to prove it gave up on the upstream.
import t from 'tap'
import { request } from 'undici'
import { StubServer, type StubAbortedEvent } from '../../src/stub/server.js'

const stub = new StubServer({ seed: 9 })
const port = await stub.listen(0)
const origin = `http://127.0.0.1:${port}`
t.teardown(() => stub.close())

const aborts: string[] = []
stub.on('aborted', (e: StubAbortedEvent) => aborts.push(e.url))

const CHAT = '/v1/chat/completions'
const chatBody = (extra: Record<string, unknown> = {}) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...extra })

function post(path: string, headers: Record<string, string>, body = chatBody(), signal?: AbortSignal) {
  return request(origin + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal })
}

/** Reads a body until it ends or fails; returns what arrived and the error, if any. */
async function drain(body: AsyncIterable<Buffer>): Promise<{ text: string; err: unknown }> {
  let text = ''
  try {
    for await (const c of body) text += c.toString()
    return { text, err: null }
  } catch (err) {
    return { text, err }
  }
}

const nextAbort = () => new Promise<StubAbortedEvent>((resolve) => stub.once('aborted', resolve))

t.test('status faults answer in the provider shape, with Retry-After where providers send one', async (t) => {
  const cases = [
    [429, 'rate_limit_exceeded', '1'],
    [500, null, undefined],
    [503, 'overloaded', '1'],
    [401, 'invalid_api_key', undefined],
  ] as const
  for (const [status, code, retryAfter] of cases) {
    const res = await post(CHAT, { 'x-stub-error': String(status) })
    t.equal(res.statusCode, status)
    t.equal(res.headers['retry-after'], retryAfter, `${status}: retry-after`)
    const j = (await res.body.json()) as { error: { message: string; type: string; code: string | null } }
    t.equal(j.error.code, code)
    t.type(j.error.message, 'string')
    t.type(j.error.type, 'string')
  }
  const res = await post(CHAT, { 'x-stub-error': '429', 'x-stub-ttft-ms': '10000' })
  t.equal(res.statusCode, 429, 'rejections come at once, TTFT applies to answers only')
  await res.body.dump()
})

t.test('an unknown x-stub-error value is a loud 400', async (t) => {
  const res = await post(CHAT, { 'x-stub-error': 'explode' })
  t.equal(res.statusCode, 400)
  t.match(await res.body.json(), { error: { message: /explode/ } })
})

t.test('reset: the connection dies with no response', async (t) => {
  const seen = new Promise((resolve) => stub.once('request', resolve))
  const err = await post(CHAT, { 'x-stub-error': 'reset' }).catch((e: unknown) => e)
  await seen
  t.ok(err instanceof Error, 'the request fails')
  t.match((err as { code?: string }).code, /^(ECONNRESET|UND_ERR_SOCKET)$/)
  t.same(aborts, [], 'a reset the stub made is not reported as a client abort')
})

t.test('stall (stream): headers and the first chunk, then silence until the client leaves', async (t) => {
  const ac = new AbortController()
  const res = await post(CHAT, { 'x-stub-error': 'stall' }, chatBody({ stream: true }), ac.signal)
  t.equal(res.statusCode, 200)
  const it = res.body[Symbol.asyncIterator]()
  const first = await it.next()
  t.match(String(first.value), /^data: \{.*"role":"assistant"/, 'the first chunk arrived')
  // proving an absence needs a bounded wait: without the stall the rest would follow in the same tick
  const more = await Promise.race([it.next().then(() => 'more'), new Promise((r) => setTimeout(r, 150, 'silence'))])
  t.equal(more, 'silence')
  const aborted = nextAbort()
  ac.abort()
  t.equal((await aborted).url, CHAT, "the client's departure is reported")
})

t.test('stall (JSON): headers with a Content-Length, and no body', async (t) => {
  const ac = new AbortController()
  const res = await post(CHAT, { 'x-stub-error': 'stall' }, chatBody(), ac.signal)
  t.equal(res.statusCode, 200)
  t.ok(Number(res.headers['content-length']) > 0)
  const aborted = nextAbort()
  ac.abort()
  await aborted
  const { err } = await drain(res.body)
  t.ok(err, 'the body never completed')
})

t.test('cut (stream): part of the events, then the connection ends', async (t) => {
  aborts.length = 0
  const res = await post(CHAT, { 'x-stub-error': 'cut', 'x-stub-tokens': '10' }, chatBody({ stream: true }))
  t.equal(res.statusCode, 200)
  const { text, err } = await drain(res.body)
  t.ok(err, 'the client sees a broken body')
  const events = text.split('\n\n').filter(Boolean)
  t.ok(events.length >= 1 && events.length < 12, `some events arrived (${events.length}) but not all`)
  t.notMatch(text, /\[DONE\]/)
  t.same(aborts, [], 'a cut the stub made is not reported as a client abort')
})

t.test('cut (JSON): fewer bytes than Content-Length promised', async (t) => {
  const res = await post(CHAT, { 'x-stub-error': 'cut' })
  const promised = Number(res.headers['content-length'])
  const { text, err } = await drain(res.body)
  t.ok(err, 'the client sees a short body')
  t.ok(text.length < promised)
})

t.test('cut and stall apply to /__stub/bytes too', async (t) => {
  const res = await request(`${origin}/__stub/bytes?n=${4 << 20}`, { headers: { 'x-stub-error': 'cut' } })
  const { text, err } = await drain(res.body)
  t.ok(err)
  t.ok(text.length >= 2 << 20 && text.length < 4 << 20, 'about half arrived')
})

t.test("a client that leaves during TTFT is reported at once as 'aborted'", async (t) => {
  const ac = new AbortController()
  const received = new Promise((resolve) => stub.once('request', resolve))
  const aborted = nextAbort()
  const pending = post(CHAT, { 'x-stub-ttft-ms': '10000' }, chatBody({ stream: true }), ac.signal).catch((e: unknown) => e)
  await received
  ac.abort()
  t.equal((await aborted).url, CHAT)
  t.ok((await pending) instanceof Error)
})
