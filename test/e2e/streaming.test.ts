// Streaming behaviour over real sockets: backpressure to a slow reader, client aborts reaching the upstream at once,
// a 15 s time-to-first-token, and an upstream that dies mid-stream.
import t from 'tap'
import net from 'node:net'
import { readFileSync } from 'node:fs'
import { Client, request } from 'undici'
import { startProxy, baseConfig } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'

const { stub, origin } = await startStub({ seed: 3 })
const proxy = await startProxy(
  baseConfig(`upstreams:
  llm: { provider: openai, targets: ["${origin}"] }
  raw: { targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: llm }
  - { path: /raw/, upstream: raw, strip_prefix: true }
`),
)
t.teardown(async () => {
  await proxy.stop()
  await stub.close()
})

t.test('a chunked upload whose end arrives while the socket is paused leaves the connection usable', async (t) => {
  // 2 MB chunked in 256 KiB pieces on one keep-alive connection: the body pauses the client socket past 64 KiB, and
  // uWS can hand over the end of the body while paused. The next request on that connection must still be read;
  // before the fix the socket stayed paused and the request hung until uWS's 10 s idle close (seen within the
  // first ~5 uploads; 40 here).
  // the embedded stub (a unix socket in the proxy) reads fast enough for the end to overtake the resume
  const local = await startProxy(baseConfig(`upstreams:
  raw: { targets: [embedded] }
routes:
  - { path: /raw/, upstream: raw, strip_prefix: true }
`))
  t.teardown(() => local.stop())
  const c = new Client(local.url('/'), { headersTimeout: 5000, bodyTimeout: 5000 })
  t.teardown(() => c.close())
  async function* chunks() {
    for (let i = 0; i < 8; i++) yield Buffer.alloc(256 * 1024, 'y')
  }
  let answered = 0
  for (let i = 0; i < 40; i++) {
    const up = await c.request({ path: '/raw/__stub/echo', method: 'POST', body: chunks() })
    if (JSON.parse(await up.body.text()).bodyBytes !== 8 * 256 * 1024) break
    const next = await c.request({ path: '/raw/__stub/health', method: 'GET' })
    await next.body.dump()
    if (next.statusCode !== 200) break
    answered++
  }
  t.equal(answered, 40, 'every upload arrived whole and the request after it was answered on the same connection')
})

function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : 0
}

const chat = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stream please' }], stream: true, max_tokens: 50, ...extra })

t.test('a slow reader of a 200 MB response keeps the proxy RSS bounded', async (t) => {
  const pid = proxy.child.pid!
  const before = rssMB(pid)
  let peak = before
  const total = 200 * 1024 * 1024
  const got = await new Promise<number>((resolve, reject) => {
    const sock = net.connect(proxy.port, '127.0.0.1', () => sock.write(`GET /raw/__stub/bytes?n=${total} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`))
    let n = 0
    let sinceBreak = 0
    sock.on('data', (d) => {
      n += d.length
      sinceBreak += d.length
      // read 4 MB, then stop reading for a moment: the proxy must stop reading its upstream meanwhile
      if (sinceBreak > 4 * 1024 * 1024) {
        sinceBreak = 0
        sock.pause()
        peak = Math.max(peak, rssMB(pid))
        setTimeout(() => sock.resume(), 40)
      }
    })
    sock.on('end', () => resolve(n))
    sock.on('error', reject)
  })
  t.ok(got > total, `received ${(got / 1048576).toFixed(0)} MB incl. headers`)
  t.ok(peak - before < 100, `RSS grew ${(peak - before).toFixed(1)} MB (from ${before.toFixed(0)} MB) for a 200 MB body`)
})

t.test('a client that disconnects aborts the upstream request at once (logged as 499)', async (t) => {
  const aborted = new Promise<{ url: string }>((r) => stub.once('aborted', r))
  const res = await request(proxy.url('/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-tps': '5', 'x-request-id': 'abort-me' },
    body: chat(),
  })
  t.equal(res.statusCode, 200)
  for await (const _ of res.body) break // first chunk, then go away
  res.body.destroy()
  const a = await aborted
  t.match(a.url, /chat\/completions/)
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === 'abort-me')
  t.equal(line.status, 499)
})

t.test('a 15 s time-to-first-token stream arrives intact', async (t) => {
  const start = Date.now()
  const res = await request(proxy.url('/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-ttft-ms': '15000' },
    body: chat({ max_tokens: 5 }),
    headersTimeout: 60_000,
  })
  const text = await res.body.text()
  t.equal(res.statusCode, 200)
  t.ok(Date.now() - start >= 15_000, 'waited the full 15 s')
  t.match(text, /data: \[DONE\]/)
})

t.test('an upstream that dies mid-stream ends the SSE response cleanly with an error event', async (t) => {
  const res = await request(proxy.url('/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-error': 'cut', 'x-request-id': 'cut-1' },
    body: chat(),
  })
  t.equal(res.statusCode, 200)
  const text = await res.body.text()
  t.match(text, /chat\.completion\.chunk/, 'got part of the stream')
  t.match(text, /event: error\ndata: \{"error":\{"message":"upstream stream failed","type":"upstream_error","code":"LEAKY_UPSTREAM_RESET"\}\}/)
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === 'cut-1')
  t.equal(line.error, 'LEAKY_UPSTREAM_RESET')
})

t.test('SSE events are relayed as they are produced, not buffered', async (t) => {
  const res = await request(proxy.url('/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-tps': '20' },
    body: chat({ max_tokens: 10 }),
  })
  const arrivals: number[] = []
  for await (const c of res.body) if (String(c).includes('data:')) arrivals.push(Date.now())
  t.ok(arrivals.length >= 5, `${arrivals.length} separate reads`)
  t.ok(arrivals[arrivals.length - 1] - arrivals[0] >= 300, 'spread over the stub pacing')
})
