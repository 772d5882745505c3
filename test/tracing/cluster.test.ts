// The limit decision of a `scope: cluster` limit in a trace: a real redis-server decides, and the server span's
// leaky.limit event says so (scope cluster, waited for Redis, via redis); its 429 names the limit.
import t from 'tap'
import { request } from 'undici'
import { startProxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { startRedis } from '../helpers/redis.js'
import { OtlpReceiver } from '../helpers/otlp.js'

const redis = await startRedis()
const rx = new OtlpReceiver()
await rx.listen()
const { stub, origin } = await startStub({ seed: 12 })
const proxy = await startProxy(`listen: 127.0.0.1:0
workers: 1
drain_timeout: 2s
admin: { listen: 127.0.0.1:0 }
log: { level: info }
tracing: { endpoint: "${rx.endpoint}", sample: 1 }
redis: { url: "${redis.url}", timeout: 500ms }
limits:
  clu: { per: ip, requests: 1/min, burst: 1, scope: cluster }
upstreams:
  llm: { provider: openai, targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: llm, limits: [clu] }
`)
t.teardown(async () => {
  await proxy.stop()
  await rx.close()
  await stub.close()
  await redis.stop()
})

async function post(id: string): Promise<number> {
  const r = await request(proxy.url('/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
  })
  await r.body.dump()
  return r.statusCode
}

t.test('allowed then denied by Redis: the limit event says cluster, waited, via redis', async (t) => {
  t.equal(await post('c-1'), 200)
  t.equal(await post('c-2'), 429)
  const of = (id: string) => rx.spans.find((s) => s.kind === 2 && (s.attrs['http.request.header.x-request-id'] as string[])[0] === id)
  await rx.until(() => of('c-1') !== undefined && of('c-2') !== undefined)
  const ok = of('c-1')!.events.find((e) => e.name === 'leaky.limit')!
  t.match(ok.attrs, { 'leaky.limit.decision': 'allowed', 'leaky.limit.scope': 'cluster', 'leaky.limit.waited': true, 'leaky.limit.via': 'redis' })
  const denied = of('c-2')!
  t.match(denied.attrs, { 'leaky.limit': 'clu', 'http.response.status_code': 429 })
  t.match(denied.events.find((e) => e.name === 'leaky.limit')!.attrs,
    { 'leaky.limit.decision': 'denied', 'leaky.limit': 'clu', 'leaky.limit.scope': 'cluster', 'leaky.limit.waited': true })
  t.ok(denied.startNs <= denied.events.find((e) => e.name === 'leaky.limit')!.timeNs, 'the decision inside the span')
})
