// Budget alerts as webhooks: a real HTTP receiver gets one JSON POST per alert from the proxy's main thread; a
// receiver that fails first gets the retry (backoff), one that always fails is given up after its attempts with a
// log line; both count in leaky_webhook_events_total. The proxy runs on the test-only clock (LEAKY_TEST_CLOCK).
import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { baseConfig, metricValue, scrapeMetrics, startProxy } from '../helpers/proxy.js'
import { SCRATCH_TMP } from '../helpers/scratch.js'

interface Hit { status: number; body: any; headers: IncomingMessage['headers'] }

/** A receiver answering each POST with the next status of `statuses` (the last one repeats). */
async function receiver(statuses: number[]): Promise<{ url: string; hits: Hit[]; next: (n: number) => Promise<void> }> {
  const hits: Hit[] = []
  const waiters: Array<{ n: number; resolve: () => void }> = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = ''
    req.on('data', (c) => (data += c))
    req.on('end', () => {
      const status = statuses[Math.min(hits.length, statuses.length - 1)]
      hits.push({ status, body: JSON.parse(data), headers: req.headers })
      res.writeHead(status).end()
      for (const w of waiters.filter((w) => hits.length >= w.n)) w.resolve()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook?token=abc`
  return { url, hits, next: (n) => hits.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve })) }
}

const flaky = await receiver([503, 200])
const broken = await receiver([500])
const dir = mkdtempSync(path.join(SCRATCH_TMP, 'webhooks-'))
const clock = path.join(dir, 'clock')
writeFileSync(clock, '2026-05-10T12:00:00Z')
const proxy = await startProxy(baseConfig(`keys:
  - { id: a1, key: "k-a1", org: acme }
budgets:
  team: { per: org, usd: 0.001/day, alert_at: [25%] }
webhooks:
  - { url: "${flaky.url}", events: [budget], backoff: 10ms..20ms, attempts: 3, headers: { authorization: "Bearer hook-secret" } }
  - { url: "${broken.url}", backoff: 10ms..10ms, attempts: 1 }
upstreams:
  llm: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: llm, auth: key, budgets: [team] }
`), { env: { LEAKY_TEST_CLOCK: clock } })
t.teardown(() => proxy.stop())

t.test('one alert → one POST per webhook, retried after a 503, given up after the attempts of a broken one', async (t) => {
  for (let i = 0; i < 10 && flaky.hits.length === 0; i++) {
    const r = await request(proxy.url('/v1/chat/completions'), {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer k-a1' },
      body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 200, messages: [{ role: 'user', content: 'spend' }] }),
    })
    await r.body.dump()
    if (r.statusCode !== 200) break
  }
  await flaky.next(2)
  await broken.next(2)
  await proxy.waitLog((l) => l.msg === 'webhook failed: event dropped')
  t.same(flaky.hits.map((h) => h.status), [503, 200], 'the 503 was retried, the 200 ended it')
  const b = flaky.hits[1].body
  t.same({ event: b.event, budget: b.budget, per: b.per, subject: b.subject, threshold: b.threshold, limit_usd: b.limit_usd, window_start: b.window_start },
    { event: 'budget', budget: 'team', per: 'org', subject: 'acme', threshold: '25%', limit_usd: 0.001, window_start: '2026-05-10T00:00:00.000Z' })
  t.ok(b.spent_usd >= 0.00025, `spent ${b.spent_usd}`)
  t.same(flaky.hits[0].body, flaky.hits[1].body, 'the retry sends the same event')
  t.equal(flaky.hits[1].headers.authorization, 'Bearer hook-secret')
  t.equal(flaky.hits[1].headers['content-type'], 'application/json')
  t.equal(broken.hits.length, 2, 'one attempt and one retry, then dropped')
  const line = proxy.lines.find((l) => l.msg === 'webhook failed: event dropped')!
  t.equal(line.reason, 'status 500')
  t.notMatch(String(line.url), /token=abc/, 'the log line leaves the query string out')
  const m = await scrapeMetrics(proxy)
  t.equal(metricValue(m, 'leaky_webhook_events_total', 'result="delivered"'), 1)
  t.equal(metricValue(m, 'leaky_webhook_events_total', 'result="retried"'), 2)
  t.equal(metricValue(m, 'leaky_webhook_events_total', 'result="dropped_failed"'), 1)
})
