// /metrics and /status.json of a real proxy (2 worker threads, real sockets, stub upstream): counters exact after a
// scripted mix of requests spread over both workers, a clean promtool lint, no secret anywhere, and admin access
// rules — token, cookie sign-in for the page, metrics_public changed by a reload.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { request, Agent } from 'undici'
import { startProxy, writeConfig } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import {
  parseExposition, promtoolPath, promtoolCheckMetrics, NO_PROMTOOL, sampleSum, histogramCount,
} from '../fixtures/observability/prom.js'

const SECRETS = ['sk-UPSTREAM-SECRET-123', 'client-SECRET-456', 'other-SECRET-654', 'admin-SECRET-789']
const ADMIN = 'admin-SECRET-789'

const { stub, origin } = await startStub({ seed: 5 })
const dead = await new Promise<number>((r) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = (s.address() as net.AddressInfo).port
    s.close(() => r(p))
  })
})

function yaml(metricsPublic: boolean): string {
  return `listen: 127.0.0.1:0
workers: 2
drain_timeout: 5s
admin: { listen: 127.0.0.1:0, token: "${ADMIN}", metrics_public: ${metricsPublic} }
log: { level: info }
limits:
  one-per-min: { per: ip, requests: 1/min, burst: 1 }
keys:
  - { id: team-a, key: "client-SECRET-456", metrics_label: true }
  - { id: team-b, key: "other-SECRET-654" }
upstreams:
  llm:
    provider: openai
    targets: ["${origin}"]
    headers: { authorization: "Bearer sk-UPSTREAM-SECRET-123" }
  plain: { targets: ["${origin}"] }
  dead: { targets: ["http://127.0.0.1:${dead}"] }
routes:
  - { path: /v1/, upstream: llm, auth: key }
  - { path: /plain/, upstream: plain, strip_prefix: true }
  - { path: /dead/, upstream: dead }
  - { path: /limited/, upstream: plain, strip_prefix: true, limits: [one-per-min] }
`
}

const file = writeConfig(yaml(true))
const proxy = await startProxy(file)
// a fresh connection for every request: SO_REUSEPORT spreads connections, not requests, over the workers
const agent = new Agent({ pipelining: 0, connections: 1, keepAliveTimeout: 1 })
t.teardown(async () => {
  await agent.close()
  await proxy.stop()
  await stub.close()
})

const admin = (p: string) => `http://127.0.0.1:${proxy.adminPort}${p}`
const bearer = { authorization: `Bearer ${ADMIN}` }

async function hit(path: string, opts: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<number> {
  const res = await request(proxy.url(path), {
    method: (opts.method ?? 'GET') as 'GET',
    body: opts.body,
    headers: { connection: 'close', ...opts.headers },
    dispatcher: agent,
  })
  await res.body.text()
  return res.statusCode
}

const chat = (stream: boolean) =>
  JSON.stringify({ model: 'gpt-4o-mini-2024-07-18', messages: [{ role: 'user', content: 'count these tokens please' }], stream, max_tokens: 30 })
const keyA = { authorization: 'Bearer client-SECRET-456', 'content-type': 'application/json' }
const keyB = { 'x-api-key': 'other-SECRET-654', 'content-type': 'application/json' }

const tally = new Map<string, number>()
function count(route: string, status: number): void {
  const k = `${route} ${Math.floor(status / 100)}xx`
  tally.set(k, (tally.get(k) ?? 0) + 1)
}

t.test('a scripted mix of requests is counted exactly', async (t) => {
  for (let i = 0; i < 24; i++) count('/plain/', await hit('/plain/__stub/health'))
  for (let i = 0; i < 3; i++) count('/plain/', await hit('/plain/users/8f3e2d1c/profile?token=abc'))
  for (let i = 0; i < 8; i++) count('none', await hit(`/nothing/${i}`))
  for (let i = 0; i < 5; i++) count('/dead/', await hit('/dead/x'))
  for (let i = 0; i < 6; i++) count('/v1/', await hit('/v1/chat/completions', { method: 'POST', body: chat(true), headers: keyA }))
  for (let i = 0; i < 4; i++) count('/v1/', await hit('/v1/chat/completions', { method: 'POST', body: chat(false), headers: keyB }))
  count('/v1/', await hit('/v1/chat/completions?key=client-SECRET-456', { method: 'POST', body: chat(false), headers: { 'content-type': 'application/json' } }))
  count('/v1/', await hit('/v1/chat/completions', { method: 'POST', body: chat(false), headers: { authorization: 'Bearer wrong-SECRET' } }))
  let limited = 0
  for (let i = 0; i < 5; i++) {
    const st = await hit('/limited/__stub/health')
    if (st === 429) limited++
    count('/limited/', st)
  }
  const total = [...tally.values()].reduce((a, b) => a + b, 0)
  // every access line is written by account, like the counters: wait for all of them before scraping
  await proxy.waitLog(() => proxy.access().length >= total)

  const res = await request(admin('/metrics'))
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const text = await res.body.text()
  const f = parseExposition(text)
  for (const [k, n] of tally) {
    const [route, status_class] = k.split(' ')
    t.equal(sampleSum(f, 'leaky_requests_total', { route, status_class }), n, `${route} ${status_class}`)
  }
  t.equal(sampleSum(f, 'leaky_requests_total'), total)
  t.equal(sampleSum(f, 'leaky_requests_total', { route: '/plain/', upstream: 'plain', method: 'GET', status_class: '2xx' }), 24)
  t.equal(sampleSum(f, 'leaky_requests_total', { route: '/v1/', method: 'POST', status_class: '4xx' }), 1, 'the unknown key: 401')
  t.equal(sampleSum(f, 'leaky_rate_limited_requests_total', { route: '/limited/' }), limited)
  t.equal(sampleSum(f, 'leaky_requests_total', { route: '/limited/', status_class: '4xx' }), limited)
  t.equal(limited, 4, 'burst 1: the first request passes, the next four are limited')
  t.equal(sampleSum(f, 'leaky_limiter_decisions_total', { limit: 'one-per-min', result: 'allowed' }), 1)
  t.equal(sampleSum(f, 'leaky_limiter_decisions_total', { limit: 'one-per-min', result: 'denied' }), 4)
  t.equal(sampleSum(f, 'leaky_limiter_denied_total', { limit: 'one-per-min', reason: 'rate' }), 4)
  t.ok(sampleSum(f, 'leaky_limiter_table_used_slots') >= 1, 'the bucket table reports its occupancy')
  t.ok(sampleSum(f, 'leaky_limiter_table_capacity_slots') >= 1024)

  const perWorker = f.find((x) => x.name === 'leaky_worker_requests_total')!.metrics
  t.equal(perWorker.length, 2)
  t.ok(perWorker.every((m) => Number(m.value) > 0), `both workers served requests (${perWorker.map((m) => m.value).join(' + ')})`)
  t.equal(sampleSum(f, 'leaky_worker_requests_total'), total)

  t.equal(sampleSum(f, 'leaky_upstream_errors_total', { upstream: 'dead', kind: 'connect' }), 5)
  t.equal(sampleSum(f, 'leaky_upstream_attempts_total', { upstream: 'dead' }), 5)
  t.equal(sampleSum(f, 'leaky_upstream_attempts_total', { upstream: 'llm' }), 11)
  t.equal(histogramCount(text, 'leaky_request_duration_seconds', { route: '/v1/' }), 12)
  t.equal(histogramCount(text, 'leaky_time_to_first_byte_seconds', { route: '/v1/' }), 11, 'TTFB for the 11 answered upstream')

  // tokens: the same numbers the access log reports
  const lines = proxy.access().filter((l) => l.route === '/v1/' && l.status === 200)
  const prompt = lines.reduce((a, l) => a + ((l.tokens_prompt as number) ?? 0), 0)
  const completion = lines.reduce((a, l) => a + ((l.tokens_completion as number) ?? 0), 0)
  t.ok(prompt > 0 && completion > 0, `usage metered (${prompt} prompt, ${completion} completion)`)
  t.equal(sampleSum(f, 'leaky_llm_tokens_total', { upstream: 'llm', provider: 'openai', model: 'gpt-4o-mini', kind: 'prompt' }), prompt)
  t.equal(sampleSum(f, 'leaky_llm_tokens_total', { upstream: 'llm', model: 'gpt-4o-mini', kind: 'completion' }), completion)

  t.equal(sampleSum(f, 'leaky_key_requests_total', { key_id: 'team-a' }), 7)
  t.equal(sampleSum(f, 'leaky_key_requests_total', { key_id: 'other' }), 4, 'team-b has no metrics_label')
  t.equal(sampleSum(f, 'leaky_workers'), 2)
  t.equal(sampleSum(f, 'leaky_generation'), 1)
  t.ok(sampleSum(f, 'leaky_upstream_connections', { upstream: 'plain', state: 'open' }) >= 0)

  if (promtoolPath() === null) t.skip(NO_PROMTOOL)
  else {
    const lint = promtoolCheckMetrics(text)
    t.equal(lint.output, '', 'promtool check metrics reports nothing')
    t.equal(lint.status, 0)
  }
})

t.test('no secret, path id or client address in /metrics or /status.json', async (t) => {
  const metrics = await (await request(admin('/metrics'))).body.text()
  const status = await (await request(admin('/status.json'), { headers: bearer })).body.text()
  for (const [name, body] of [['/metrics', metrics], ['/status.json', status]] as const) {
    for (const s of SECRETS) t.notOk(body.includes(s), `${name} does not contain ${s.slice(0, 12)}…`)
    t.notOk(body.includes('8f3e2d1c'), `${name} has no path ids`)
    t.notOk(body.includes('token=abc'), `${name} has no query strings`)
    // the upstream targets the config names (their state is shown per target) are on 127.0.0.1 too: they are
    // configuration, not client data; any other 127.0.0.1 would be the client's address
    const rest = body.split(origin).join('').split(`http://127.0.0.1:${dead}`).join('')
    t.notOk(rest.includes('127.0.0.1'), `${name} has no client address`)
  }
  t.notOk(metrics.includes('team-b'), 'a key without metrics_label is no label value')
})

t.test('/status.json: rates and tables the page draws', async (t) => {
  const res = await request(admin('/status.json'), { headers: bearer })
  t.equal(res.statusCode, 200)
  const s = (await res.body.json()) as Record<string, any>
  t.equal(s.workers, 2)
  t.equal(s.generation, 1)
  t.type(s.uptime_s, 'number')
  t.ok(Array.isArray(s.series.t) && s.series.t.length === s.series.rps.length)
  t.same(s.upstreams.map((u: { name: string }) => u.name).sort(), ['dead', 'llm', 'plain'])
  const deadUp = s.upstreams.find((u: { name: string }) => u.name === 'dead')
  t.equal(deadUp.health, 'failing')
  t.ok(s.models.some((m: { model: string; provider: string }) => m.model === 'gpt-4o-mini' && m.provider === 'openai'))
})

t.test('admin access: token, cookie sign-in, open health endpoints', async (t) => {
  for (const p of ['/live', '/ready']) t.equal((await request(admin(p))).statusCode, 200, `${p} needs no token`)
  t.equal((await request(admin('/metrics'))).statusCode, 200, 'metrics_public: /metrics needs no token')
  const denied = await request(admin('/status.json'))
  t.equal(denied.statusCode, 401)
  t.equal(denied.headers['www-authenticate'], 'Bearer realm="leaky-admin"')
  t.equal(((await denied.body.json()) as { error: { code: string } }).error.code, 'LEAKY_UNAUTHORIZED')
  t.equal((await request(admin('/status.json'), { headers: { authorization: 'Bearer nope' } })).statusCode, 401)
  t.equal((await request(admin('/status'))).statusCode, 401)
  t.equal((await request(admin('/whatever'))).statusCode, 401, 'unknown paths say nothing without the token')
  t.equal((await request(admin('/status?token=wrong'))).statusCode, 401)
  const signin = await request(admin(`/status?token=${ADMIN}`))
  t.equal(signin.statusCode, 303)
  t.equal(signin.headers.location, '/status')
  const cookie = String(signin.headers['set-cookie']).split(';')[0]
  t.match(cookie, /^leaky_admin=[0-9a-f]{64}$/)
  t.notOk(cookie.includes(ADMIN), 'the cookie is not the token')
  const page = await request(admin('/status'), { headers: { cookie } })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-security-policy'], /default-src 'none'/)
  const html = await page.body.text()
  t.match(html, /<title>leaky-tokens status<\/title>/)
  t.notMatch(html, /<script[^>]+src=/, 'no external script')
  t.notMatch(html, /<(?:script|link|img)[^>]+(?:src|href)="(?!data:)/, 'nothing loaded from elsewhere: no CDN')
  t.equal((await request(admin('/status.json'), { headers: { cookie } })).statusCode, 200)
})

t.test('a reload that sets metrics_public: false closes /metrics to anonymous scrapers, and is counted', async (t) => {
  writeFileSync(file, yaml(false))
  const before = proxy.lines.length
  proxy.child.kill('SIGHUP')
  await proxy.waitLog((l) => l.msg === 'reloaded' && proxy.lines.indexOf(l) >= before)
  t.equal((await request(admin('/metrics'))).statusCode, 401)
  const res = await request(admin('/metrics'), { headers: bearer })
  t.equal(res.statusCode, 200)
  const f = parseExposition(await res.body.text())
  t.equal(sampleSum(f, 'leaky_config_reloads_total', { result: 'success' }), 1)
  t.equal(sampleSum(f, 'leaky_config_version'), 2)
})
