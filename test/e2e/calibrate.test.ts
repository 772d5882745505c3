// `calibrate: from_headers` end to end (README "Upstreams and traffic"): a plain HTTP server started here plays the
// provider and reports its account's limit in x-ratelimit-limit-requests (or anthropic-ratelimit-requests-limit);
// a `per: upstream` limit of the real proxy (2 workers) follows it, its twin without calibrate does not.
import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { request } from 'undici'
import { startProxy, baseConfig, metricValue, scrapeMetrics } from '../helpers/proxy.js'

let hits = 0
const provider = http.createServer((req, res) => {
  hits++
  const headers: Record<string, string> = {}
  const report = req.headers['x-test-report']
  if (report === 'openai') headers['x-ratelimit-limit-requests'] = '2'
  else if (report === 'anthropic') headers['anthropic-ratelimit-requests-limit'] = '2'
  else if (report === 'malformed') headers['x-ratelimit-limit-requests'] = 'plenty'
  res.writeHead(200, headers).end('ok')
})
provider.listen(0, '127.0.0.1')
await once(provider, 'listening')
const origin = `http://127.0.0.1:${(provider.address() as net.AddressInfo).port}`

// 6/min with a burst of 3: three requests at once pass. Calibrated to a reported 2/min: the burst scales to 1, one
// request every 30 s; a first request's charge at the configured rate (10 s) leaves no room for a second at once
const proxy = await startProxy(baseConfig(`limits:
  follows: { per: upstream, requests: 6/min, burst: 3, calibrate: from_headers }
  fixed: { per: upstream, requests: 6/min, burst: 3 }
upstreams:
  cal:
    targets: ["${origin}"]
    headers: { authorization: "Bearer account-1" }
  cal-anthropic:
    targets: ["${origin}"]
    headers: { x-api-key: "account-2" }
  cal-malformed:
    targets: ["${origin}"]
    headers: { authorization: "Bearer account-3" }
  fixed:
    targets: ["${origin}"]
    headers: { authorization: "Bearer account-4" }
routes:
  - { path: /cal/, upstream: cal, strip_prefix: true, limits: [follows] }
  - { path: /cala/, upstream: cal-anthropic, strip_prefix: true, limits: [follows] }
  - { path: /calm/, upstream: cal-malformed, strip_prefix: true, limits: [follows] }
  - { path: /fixed/, upstream: fixed, strip_prefix: true, limits: [fixed] }
`))
t.teardown(async () => {
  await proxy.stop()
  provider.closeAllConnections()
  provider.close()
})

// RateLimit-Policy is the proxy's own (the provider's x-ratelimit-* pass through on a forwarded answer): q is the
// burst, w the seconds a full bucket takes to drain (src/limiter/headers.ts)
async function get(path: string, report: string): Promise<{ status: number; code: string | null; policy: unknown; retryAfter: unknown }> {
  const r = await request(proxy.url(path), { headers: { 'x-test-report': report } })
  const text = await r.body.text()
  let code: string | null = null
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? null
  } catch {
    // the provider's plain body
  }
  return { status: r.statusCode, code, policy: r.headers['ratelimit-policy'], retryAfter: r.headers['retry-after'] }
}

t.test('without calibrate the configured limit holds, whatever the provider reports', async (t) => {
  const r = [await get('/fixed/x', 'openai'), await get('/fixed/x', 'openai'), await get('/fixed/x', 'openai')]
  t.same(r.map((x) => x.status), [200, 200, 200], 'the configured burst of 3')
  t.equal(r[0].policy, '"fixed";q=3;w=30')
  t.equal((await get('/fixed/x', 'openai')).status, 429)
})

for (const [path, kind] of [['/cal/x', 'openai'], ['/cala/x', 'anthropic']] as const) {
  t.test(`from_headers (${kind} headers): after the provider reports 2/min, the next request is refused`, async (t) => {
    const first = await get(path, kind)
    t.equal(first.status, 200)
    t.equal(first.policy, '"follows";q=3;w=30', 'charged at the configured rate: nothing reported yet')
    const before = hits
    const second = await get(path, kind)
    t.match(second, { status: 429, code: 'LEAKY_RATE_LIMITED', policy: '"follows";q=1;w=30' }, 'the limit is the reported 2/min now: burst 3 × 2/6')
    // the first charge moved the bucket 10 s (one request at 6/min); at 2/min with a burst of 1 the next fits then
    const ra = Number(second.retryAfter)
    t.ok(ra >= 1 && ra <= 10, `Retry-After: when the first charge has drained: ${String(second.retryAfter)} s`)
    t.equal(hits, before, 'not forwarded')
    const upstream = path === '/cal/x' ? 'cal' : 'cal-anthropic'
    t.equal(metricValue(await scrapeMetrics(proxy), 'leaky_provider_limit', `upstream="${upstream}",kind="requests"`), 2, 'the reported limit is shown')
  })
}

t.test('a reported limit that does not parse is ignored and counted', async (t) => {
  const r = [await get('/calm/x', 'malformed'), await get('/calm/x', 'malformed'), await get('/calm/x', 'malformed')]
  t.same(r.map((x) => [x.status, x.policy]), Array(3).fill([200, '"follows";q=3;w=30']), 'the configured limit stays')
  t.equal(metricValue(await scrapeMetrics(proxy), 'leaky_provider_headers_malformed_total', 'upstream="cal-malformed"'), 3)
})
