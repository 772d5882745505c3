// Tracing across a zero-downtime upgrade: each generation has its own exporter; a request served by the old one and
// one served by the new one are both exported, once each.
import t from 'tap'
import { request } from 'undici'
import { startMaster } from '../fixtures/supervisor/master.js'
import { OtlpReceiver } from '../helpers/otlp.js'

const rx = new OtlpReceiver()
await rx.listen()
const m = await startMaster(`tracing: { endpoint: "${rx.endpoint}", sample: 1 }
upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub }
`)
t.teardown(async () => {
  await m.proxy.stop()
  await rx.close()
})

async function chat(id: string): Promise<number> {
  // a new connection each time: after the upgrade it reaches the new generation
  const r = await request(m.proxy.url('/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id, connection: 'close' },
    body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
  })
  await r.body.dump()
  return r.statusCode
}
const server = (id: string) => rx.spans.find((s) => s.kind === 2 && (s.attrs['http.request.header.x-request-id'] as string[])[0] === id)

t.test('spans of both generations arrive, once each', async (t) => {
  t.equal(await chat('before-upgrade'), 200)
  const up = await m.cli('upgrade')
  t.equal(up.code, 0, up.stderr)
  t.equal(await chat('after-upgrade'), 200)
  await rx.until(() => server('before-upgrade') !== undefined && server('after-upgrade') !== undefined, 30_000)
  t.equal((await m.waitLog((l) => l.msg === 'access' && l.req_id === 'before-upgrade')).gen, 1, 'served by generation 1')
  t.equal((await m.waitLog((l) => l.msg === 'access' && l.req_id === 'after-upgrade')).gen, 2, 'served by generation 2')
  t.equal(rx.spans.filter((s) => s.kind === 2).length, 2, 'each once')
})
