// The test helpers: /__stub/bytes streams with backpressure (a paused reader holds the stub at a socket's worth
// of data, not the whole response), /__stub/echo reports what arrived, /__stub/health answers.
import t from 'tap'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { request } from 'undici'
import { StubServer, type StubBackpressureEvent, type StubRequestEvent } from '../../src/stub/server.js'

const stub = new StubServer()
const port = await stub.listen(0)
const origin = `http://127.0.0.1:${port}`
t.teardown(() => stub.close())

t.test('bytes: exact length, the k & 0xff pattern, and bad n refused', async (t) => {
  const res = await request(`${origin}/__stub/bytes?n=200000`)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-length'], '200000')
  t.equal(res.headers['content-type'], 'application/octet-stream')
  const buf = Buffer.from(await res.body.arrayBuffer())
  t.equal(buf.length, 200000)
  let bad = 0
  for (let k = 0; k < buf.length; k++) if (buf[k] !== (k & 0xff)) bad++
  t.equal(bad, 0)
  const zero = await request(`${origin}/__stub/bytes?n=0`)
  t.equal((await zero.body.arrayBuffer()).byteLength, 0)
  const neg = await request(`${origin}/__stub/bytes?n=-4`)
  t.equal(neg.statusCode, 400)
  await neg.body.dump()
})

t.test('bytes: a slow reader of 200 MB holds the stub at the socket buffers, then gets every byte', async (t) => {
  const total = 200 * 1024 * 1024
  // bound on bytes handed to the socket but not yet read: kernel buffers on loopback plus a chunk or two
  const BOUND = 16 * 1024 * 1024
  let maxSent = 0
  let lastEventAt = 0
  const onBp = (e: StubBackpressureEvent) => {
    maxSent = Math.max(maxSent, e.sent)
    lastEventAt = performance.now()
  }
  stub.on('backpressure', onBp)
  t.teardown(() => stub.off('backpressure', onBp))
  /** Resolves once the stub has gone 60 ms without handing the socket anything: it is waiting for 'drain'. */
  const quiet = async () => {
    while (lastEventAt === 0 || performance.now() - lastEventAt < 60) await new Promise((r) => setTimeout(r, 20))
  }

  const sock = net.connect(port, '127.0.0.1')
  sock.pause()
  let headerDone = false
  let bodyRead = 0
  sock.on('data', (d: Buffer) => {
    if (headerDone) bodyRead += d.length
    else {
      const i = d.indexOf('\r\n\r\n')
      if (i !== -1) {
        headerDone = true
        bodyRead += d.length - i - 4
      }
    }
  })
  const ended = new Promise<void>((r) => sock.once('end', r))
  sock.write(`GET /__stub/bytes?n=${total} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  // a reader that reads 8 MiB at a time and stops in between: each time, the stub must stop close behind it
  let previous = -1
  for (let round = 0; round < 3; round++) {
    await quiet()
    t.ok(maxSent - bodyRead <= BOUND, `round ${round}: paused at ${(bodyRead / 2 ** 20).toFixed(1)} MiB read, stub stopped at ${(maxSent / 2 ** 20).toFixed(1)} MiB`)
    t.ok(maxSent > previous, 'and it had moved on since the last pause')
    previous = maxSent
    const target = bodyRead + 8 * 1024 * 1024
    await new Promise<void>((r) => {
      const check = () => {
        if (bodyRead < target) return
        sock.off('data', check)
        sock.pause()
        r()
      }
      sock.on('data', check)
      sock.resume()
    })
  }
  sock.resume()
  await ended
  t.equal(bodyRead, total, 'every byte arrived')
})

t.test('echo: method, url, headers and the body size, also past the retained 16 MiB', async (t) => {
  const seen = new Promise<StubRequestEvent>((r) => stub.once('request', r))
  const body = Buffer.alloc(20 * 1024 * 1024, 7)
  const res = await request(`${origin}/__stub/echo?x=1`, { method: 'PUT', headers: { 'x-custom': 'yes' }, body })
  const j = (await res.body.json()) as { method: string; url: string; headers: Record<string, string>; bodyBytes: number }
  t.equal(j.method, 'PUT')
  t.equal(j.url, '/__stub/echo?x=1')
  t.equal(j.headers['x-custom'], 'yes')
  t.equal(j.bodyBytes, body.length)
  const ev = await seen
  t.equal(ev.body.length, 16 * 1024 * 1024, "'request' carries the first 16 MiB")
  t.ok(ev.rawHeaders.includes('x-custom'))
})

t.test('health', async (t) => {
  const res = await request(`${origin}/__stub/health`)
  t.same(await res.body.json(), { status: 'ok' })
})
