// The server itself: provider selection, 404s in OpenAI's error shape, keep-alive (long enough to sit behind a
// proxy's pool), a unix socket, option checks, and close() ending open streams without calling them aborts.
import t from 'tap'
import net from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client, request } from 'undici'
import { StubServer } from '../../src/stub/server.js'

const chat = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })

t.test("provider: 'gemini' serves Gemini and the helpers, and 404s the rest", async (t) => {
  const stub = new StubServer({ provider: 'gemini' })
  const origin = `http://127.0.0.1:${await stub.listen(0)}`
  t.teardown(() => stub.close())
  const g = await request(`${origin}/v1beta/models/gemini-2.5-flash:generateContent`, { method: 'POST', body: JSON.stringify({ contents: [] }) })
  t.equal(g.statusCode, 200)
  await g.body.dump()
  for (const path of ['/v1/chat/completions', '/v1/responses', '/v1/messages', '/compatible-mode/v1/chat/completions', '/api/v1/services/aigc/text-generation/generation']) {
    const r = await request(origin + path, { method: 'POST', body: chat })
    t.equal(r.statusCode, 404, path)
    await r.body.dump()
  }
  const h = await request(`${origin}/__stub/health`)
  t.equal(h.statusCode, 200)
  await h.body.dump()
})

t.test("provider: 'anthropic' serves /v1/messages, not OpenAI's /v1/ paths", async (t) => {
  const stub = new StubServer({ provider: 'anthropic' })
  const origin = `http://127.0.0.1:${await stub.listen(0)}`
  t.teardown(() => stub.close())
  const m = await request(`${origin}/v1/messages`, {
    method: 'POST', headers: { 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }),
  })
  t.equal(m.statusCode, 200)
  t.match(await m.body.json(), { type: 'message', usage: { output_tokens: 4 } })
  for (const path of ['/v1/chat/completions', '/v1/responses']) {
    const r = await request(origin + path, { method: 'POST', body: chat })
    t.equal(r.statusCode, 404, path)
    await r.body.dump()
  }
})

t.test('unknown paths: 404 in the OpenAI error shape', async (t) => {
  const stub = new StubServer()
  const origin = `http://127.0.0.1:${await stub.listen(0)}`
  t.teardown(() => stub.close())
  for (const path of ['/nope', '/v1beta/models/gemini-2.5-flash:explode', '/v2/chat/completions']) {
    const r = await request(origin + path, { method: 'POST', body: '{}' })
    t.equal(r.statusCode, 404)
    const j = (await r.body.json()) as { error: { message: string; type: string; code: string } }
    t.match(j, { error: { message: String, type: 'invalid_request_error', code: 'unknown_url' } }, path)
  }
})

t.test('keep-alive: many requests on one connection, advertised for 65 s', async (t) => {
  const stub = new StubServer()
  const port = await stub.listen(0)
  t.teardown(() => stub.close())
  const client = new Client(`http://127.0.0.1:${port}`, { pipelining: 1 })
  t.teardown(() => client.close())
  let connects = 0
  client.on('connect', () => connects++)
  for (let i = 0; i < 5; i++) {
    const r = await client.request({ path: '/v1/chat/completions', method: 'POST', body: chat })
    t.equal(r.headers['keep-alive'], 'timeout=65')
    await r.body.dump()
  }
  t.equal(connects, 1, 'one connection served all five')
})

t.test('listenUnix', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'stub-'))
  const path = join(dir, 'stub.sock')
  const stub = new StubServer()
  await stub.listenUnix(path)
  const client = new Client('http://localhost', { socketPath: path })
  t.teardown(async () => {
    await client.close()
    await stub.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const r = await client.request({ path: '/v1/chat/completions', method: 'POST', body: chat })
  t.equal(r.statusCode, 200)
  t.match(await r.body.json(), { object: 'chat.completion' })
})

t.test('close() ends open streams and idle connections, and reports no aborts', async (t) => {
  const stub = new StubServer()
  const port = await stub.listen(0)
  let aborts = 0
  stub.on('aborted', () => aborts++)
  const idle = net.connect(port, '127.0.0.1')
  await new Promise((r) => idle.once('connect', r))
  const idleClosed = new Promise((r) => idle.once('close', r))
  const res = await request(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'x-stub-error': 'stall' },
    body: JSON.stringify({ messages: [], stream: true }),
  })
  const bodyDone = res.body.text().then(
    () => 'ended',
    () => 'failed',
  )
  await stub.close()
  t.equal(await bodyDone, 'failed', 'the stalled stream was ended by close()')
  await idleClosed
  t.equal(aborts, 0)
  const refused = await request(`http://127.0.0.1:${port}/__stub/health`).catch((e: unknown) => e)
  t.ok(refused instanceof Error, 'nothing listens any more')
})

t.test('options are checked', async (t) => {
  t.throws(() => new StubServer({ ttftMs: -1 }), RangeError)
  t.throws(() => new StubServer({ tokensPerSecond: Number.NaN }), RangeError)
})
