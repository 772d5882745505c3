// runStub, as `leaky stub` uses it: one JSON line with the port once listening, requests served with the given
// options, and a clean stop on SIGTERM, SIGINT or an abort signal.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { PassThrough } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { runStub } from '../../src/stub/cli.js'

const FIXTURE = fileURLToPath(new URL('../fixtures/stub/run-stub.mjs', import.meta.url))

t.test('in-process: prints the port, serves with its options, stops on abort', async (t) => {
  const out = new PassThrough()
  const ac = new AbortController()
  const done = runStub({ port: 0, host: '127.0.0.1', seed: 4, provider: 'openai', out, signal: ac.signal })
  const [line] = (await once(createInterface({ input: out }), 'line')) as [string]
  const msg = JSON.parse(line) as { msg: string; port: number }
  t.equal(msg.msg, 'stub listening')
  t.ok(msg.port > 0)
  const r = await request(`http://127.0.0.1:${msg.port}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [] }) })
  t.equal(((await r.body.json()) as { created: number }).created, 1735689600, 'seeded as asked')
  const g = await request(`http://127.0.0.1:${msg.port}/v1beta/models`)
  t.equal(g.statusCode, 404, "provider 'openai' as asked")
  await g.body.dump()
  ac.abort()
  await done
  t.ok(await request(`http://127.0.0.1:${msg.port}/__stub/health`).catch((e: unknown) => e) instanceof Error, 'stopped listening')
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`child process (dist/): ${signal} stops it with exit code 0`, async (t) => {
    const child = spawn(process.execPath, [FIXTURE, JSON.stringify({ ttftMs: 0 })], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string]
    const { port } = JSON.parse(line) as { port: number }
    const r = await request(`http://127.0.0.1:${port}/__stub/health`)
    t.equal(r.statusCode, 200)
    await r.body.dump()
    const exited = once(child, 'exit')
    child.kill(signal)
    const [code, sig] = await exited
    t.equal(code, 0)
    t.equal(sig, null)
  })
}
