// config/examples/traffic.yaml works as README ("Upstreams and traffic") says: the proxy started on the file itself
// (listeners on free ports, the GPU servers and OpenAI pointed at local stubs through the file's ${env:…:-default}s,
// its key in the environment). Loading and the named missing variables are checked with every example in
// examples.test.ts; this behaviour case is a file of its own so that file stays within its time budget.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import path from 'node:path'
import { request } from 'undici'
import { ROOT, startProxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { scratchDir } from '../helpers/scratch.js'
import type { StubRequestEvent } from '../../src/stub/server.js'

async function stub(): Promise<{ origin: string; seen: StubRequestEvent[] }> {
  const { stub, origin } = await startStub({ seed: 1 })
  t.teardown(() => stub.close())
  const seen: StubRequestEvent[] = []
  stub.on('request', (e: StubRequestEvent) => seen.push(e))
  return { origin, seen }
}

t.test('traffic.yaml: spread over the live servers; a dead one ejected with no failed request', async (t) => {
  const a = await stub()
  const b = await stub()
  const openai = await stub()
  const closed = net.createServer()
  closed.listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const dead = (closed.address() as net.AddressInfo).port
  closed.close() // nothing listens there any more: GPU C refuses connections
  const run = scratchDir('run-')
  const p = await startProxy(path.join(ROOT, 'config/examples/traffic.yaml'), {
    env: {
      OPENAI_API_KEY: 'sk-upstream-primary', LEAKY_LISTEN: '127.0.0.1:0', LEAKY_ADMIN_LISTEN: '127.0.0.1:0', LEAKY_RUNTIME_DIR: run, RUNTIME_DIRECTORY: run,
      LEAKY_GPU_A_URL: a.origin, LEAKY_GPU_B_URL: b.origin, LEAKY_GPU_C_URL: `http://127.0.0.1:${dead}`, LEAKY_OPENAI_URL: openai.origin,
    },
  })
  t.teardown(() => p.stop())
  const chat = async () => {
    const r = await request(p.url('/v1/chat/completions'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) })
    await r.body.dump()
    return r.statusCode
  }
  const ejected = (l: { msg?: string; upstream?: unknown }) => l.msg === 'target ejected' && l.upstream === 'gpus'
  let ok = 0
  let n = 0
  // the dead server is picked about one request in six (p2c, and A weighs 2): five failures in a row eject it
  while (!p.lines.some(ejected) && n < 300) {
    n++
    if ((await chat()) === 200) ok++
  }
  t.equal(ok, n, `every one of ${n} requests answered (a connect error is retried on another server)`)
  t.ok(a.seen.length > b.seen.length, `A (weight 2) took more than B (${a.seen.length}, ${b.seen.length})`)
  t.equal(openai.seen.length, 0, 'the fallback was not needed')
  t.match(String(p.lines.find(ejected)?.target), String(dead), 'the dead server was ejected after 5 failures in a row')
})
