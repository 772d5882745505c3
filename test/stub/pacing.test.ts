// Latency knobs: time to first token (option and header), tokens-per-second pacing of stream chunks and of
// JSON answers, and jitter. Lower bounds only where the machine's load could stretch a timing.
import t from 'tap'
import { performance } from 'node:perf_hooks'
import { request } from 'undici'
import { StubServer } from '../../src/stub/server.js'

const stub = new StubServer({ ttftMs: 400 })
const port = await stub.listen(0)
const origin = `http://127.0.0.1:${port}`
t.teardown(() => stub.close())

const body = (extra: Record<string, unknown> = {}) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'pace me' }], ...extra })
const post = (headers: Record<string, string>, b = body()) =>
  request(`${origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: b })

t.test('no byte before the TTFT (server option)', async (t) => {
  const start = performance.now()
  const res = await post({}, body({ stream: true }))
  const first = performance.now() - start
  t.ok(first >= 400, `headers after ${first.toFixed(1)} ms`)
  await res.body.text()
})

t.test('x-stub-ttft-ms overrides the option, both ways', async (t) => {
  let start = performance.now()
  let res = await post({ 'x-stub-ttft-ms': '200' })
  let first = performance.now() - start
  t.ok(first >= 200, `headers after ${first.toFixed(1)} ms`)
  t.ok(first < 390, 'sooner than the server default')
  await res.body.text()
  start = performance.now()
  res = await post({ 'x-stub-ttft-ms': '600' })
  first = performance.now() - start
  t.ok(first >= 600, `headers after ${first.toFixed(1)} ms`)
  await res.body.text()
})

t.test('x-stub-tps paces stream chunks after the first token', async (t) => {
  const res = await post({ 'x-stub-ttft-ms': '0', 'x-stub-tps': '100', 'x-stub-tokens': '10' }, body({ stream: true }))
  let chunks = 0
  let firstAt = 0
  let text = ''
  for await (const c of res.body) {
    if (chunks++ === 0) firstAt = performance.now()
    text += c.toString()
  }
  const spread = performance.now() - firstAt
  t.ok(spread >= 90, `9 more tokens at 100/s took ${spread.toFixed(1)} ms`)
  t.ok(chunks >= 5, `arrived in separate chunks (${chunks})`)
  t.match(text, /data: \[DONE\]\n\n$/)
})

t.test('x-stub-tps delays a JSON answer by the time to generate it', async (t) => {
  const start = performance.now()
  const res = await post({ 'x-stub-ttft-ms': '0', 'x-stub-tps': '100', 'x-stub-tokens': '15' })
  const elapsed = performance.now() - start
  t.ok(elapsed >= 150, `15 tokens at 100/s answered after ${elapsed.toFixed(1)} ms`)
  t.equal(((await res.body.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 15)
})

t.test('x-stub-jitter-ms adds delay to every chunk', async (t) => {
  // the jitter PRNG is seeded from the request, so this sum is the same on every run
  const start = performance.now()
  const res = await post({ 'x-stub-ttft-ms': '0', 'x-stub-jitter-ms': '20', 'x-stub-tokens': '20' }, body({ stream: true }))
  const text = await res.body.text()
  const elapsed = performance.now() - start
  t.ok(elapsed >= 50, `20 jittered chunks took ${elapsed.toFixed(1)} ms`)
  t.equal(text.split('\n\n').filter(Boolean).length, 1 + 20 + 1 + 1)
})
