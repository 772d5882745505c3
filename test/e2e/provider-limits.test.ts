// Provider-limit awareness end to end (README "Upstreams and traffic"): a plain HTTP server started here plays the
// provider and sends the rate-limit headers the client asks it for (x-test-limits, forwarded by the proxy); the
// real proxy (2 workers) must stop forwarding to an exhausted account until the reset the provider named.
import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { request } from 'undici'
import { startProxy, baseConfig } from '../helpers/proxy.js'

let hits = 0
const provider = http.createServer((req, res) => {
  hits++
  const ask = req.headers['x-test-limits']
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  let status = 200
  if (ask === 'tokens-0') Object.assign(headers, { 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '1.5s', 'x-ratelimit-remaining-requests': '41' })
  else if (ask === 'malformed') Object.assign(headers, { 'x-ratelimit-remaining-requests': 'lots', 'x-ratelimit-remaining-tokens': '900' })
  else if (ask === '429') {
    status = 429
    headers['retry-after'] = '1'
  } else if (ask === 'anthropic-0') {
    Object.assign(headers, { 'anthropic-ratelimit-requests-remaining': '0', 'anthropic-ratelimit-requests-reset': new Date(Date.now() + 1000).toISOString() })
  } else headers['x-ratelimit-remaining-tokens'] = '5000'
  res.writeHead(status, headers).end(JSON.stringify({ by: 'provider', auth: req.headers.authorization ?? null }))
})
const backup = http.createServer((_req, res) => res.end(JSON.stringify({ by: 'backup' })))
for (const s of [provider, backup]) {
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
}
const origin = (s: http.Server) => `http://127.0.0.1:${(s.address() as net.AddressInfo).port}`

const proxy = await startProxy(baseConfig(`upstreams:
  acct:
    provider: openai
    targets: ["${origin(provider)}"]
    headers: { authorization: "Bearer upstream-account" }
  acct-fb:
    provider: openai
    targets: ["${origin(provider)}"]
    headers: { authorization: "Bearer another-account" }
    fallback: backup
  backup:
    targets: ["${origin(backup)}"]
  acct-429:
    provider: anthropic
    targets: ["${origin(provider)}"]
    headers: { x-api-key: "a-third-account" }
  passthrough:
    provider: openai
    targets: ["${origin(provider)}"]
routes:
  - { path: /acct/, upstream: acct, strip_prefix: true }
  - { path: /fb/, upstream: acct-fb, strip_prefix: true }
  - { path: /a429/, upstream: acct-429, strip_prefix: true }
  - { path: /pass/, upstream: passthrough, strip_prefix: true }
`))
t.teardown(async () => {
  await proxy.stop()
  for (const s of [provider, backup]) {
    s.closeAllConnections()
    s.close()
  }
})

async function get(path: string, limits = ''): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }> {
  const r = await request(proxy.url(path), { headers: limits === '' ? {} : { 'x-test-limits': limits } })
  return { status: r.statusCode, body: (await r.body.json()) as Record<string, unknown>, headers: r.headers }
}
async function metrics(): Promise<string> {
  return (await request(`http://127.0.0.1:${proxy.adminPort}/metrics`)).body.text()
}

t.test('x-ratelimit-remaining-tokens: 0 with a reset: no forwarding until the reset, 429 with its Retry-After', async (t) => {
  t.equal((await get('/acct/x')).status, 200)
  t.match(await metrics(), /leaky_provider_remaining\{upstream="acct",kind="tokens"\} 5000\n/)
  const first = await get('/acct/x', 'tokens-0')
  const at = Date.now()
  t.equal(first.status, 200, 'the answer that reports the exhaustion is relayed')
  const before = hits
  // both workers see it: a few requests, on new connections so they spread over the workers
  for (let i = 0; i < 6; i++) {
    const r = await request(proxy.url('/acct/x'), { reset: true })
    const body = (await r.body.json()) as { error: { code: string } }
    t.equal(r.statusCode, 429)
    t.equal(body.error.code, 'LEAKY_UPSTREAM_QUOTA')
    const ra = Number(r.headers['retry-after'])
    t.ok(ra >= 1 && ra <= 2, `Retry-After ${ra}: the 1.5 s the provider named, rounded up`)
  }
  t.equal(hits, before, 'nothing reached the provider meanwhile')
  const m = await metrics()
  t.match(m, /leaky_provider_remaining\{upstream="acct",kind="tokens"\} 0\n/)
  t.match(m, /leaky_provider_exhausted\{upstream="acct"\} 1\n/)
  t.match(m, /leaky_provider_refused_total\{upstream="acct"\} 6\n/)
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.status === 429 && l.path === '/acct/x')
  t.equal(line.error, 'LEAKY_UPSTREAM_QUOTA')
  t.match(String(line.detail), /provider quota exhausted: acct/)
  // after the reset, forwarding resumes by itself
  let r = await get('/acct/x')
  while (r.status === 429) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    r = await get('/acct/x')
  }
  t.equal(r.status, 200)
  t.ok(Date.now() - at >= 1400, `forwarded again ${Date.now() - at} ms after the exhaustion (reset 1.5 s)`)
  t.match(await metrics(), /leaky_provider_exhausted\{upstream="acct"\} 0\n/)
})

t.test('an exhausted account with a fallback: the fallback answers', async (t) => {
  t.equal((await get('/fb/x', 'tokens-0')).body.by, 'provider')
  const r = await get('/fb/x')
  t.equal(r.status, 200)
  t.equal(r.body.by, 'backup')
})

t.test('a 429 with Retry-After, and Anthropic\'s headers, block the account too', async (t) => {
  const r = await get('/a429/x', '429')
  t.equal(r.status, 429, 'the provider\'s own 429 is relayed')
  const local = await get('/a429/x')
  t.equal(local.status, 429)
  t.equal((local.body as { error: { code: string } }).error.code, 'LEAKY_UPSTREAM_QUOTA', 'the next one is answered here, in the route\'s shape')
  t.equal((local.body as { type: string }).type, 'error', 'Anthropic error shape')
  let again = await get('/a429/x')
  while (again.status === 429) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    again = await get('/a429/x')
  }
  t.equal((await get('/a429/x', 'anthropic-0')).status, 200)
  t.equal((await get('/a429/x')).status, 429, 'anthropic-ratelimit-requests-remaining: 0 blocks until its reset')
})

t.test('malformed headers are ignored and counted; the client\'s own key: its limits are not the upstream\'s', async (t) => {
  t.equal((await get('/acct/x', 'malformed')).status, 200)
  t.equal((await get('/acct/x')).status, 200, 'traffic goes on')
  t.match(await metrics(), /leaky_provider_headers_malformed_total\{upstream="acct"\} 1\n/)
  t.equal((await get('/pass/x', 'tokens-0')).status, 200)
  t.equal((await get('/pass/x')).status, 200, 'an upstream without its own credentials is never blocked for everyone')
})
