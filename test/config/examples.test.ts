// Every file under config/examples/ (README shows each one verbatim: test/ops/readme.test.ts) is valid for the real
// loader and works as README says: the proxy is started on the file itself, its listeners moved to free ports and
// its provider URLs pointed at a local stub through the ${env:…:-default}s the files have for that, the keys it
// needs set in its environment. prometheus.yml is checked by promtool.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs'
import net from 'node:net'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { request } from 'undici'
import { Redis } from 'ioredis'
import { loadConfigFile, formatIssue } from '../../src/config/index.js'
import { ROOT, startProxy, type Proxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { startRedis } from '../helpers/redis.js'
import { OtlpReceiver } from '../helpers/otlp.js'
import type { StubRequestEvent } from '../../src/stub/server.js'
import { AUDIENCE, ISSUER, sign, signingKey, startJwks } from '../helpers/jwks.js'
import { Agent } from 'undici'
import { makeCerts } from '../helpers/certs.js'

// one real proxy per example, started one after another, and each example joins the list as its feature lands: the
// file outgrows the suite's 120 s per-file limit on a loaded 2-core machine, though each proxy is quick
t.setTimeout(480_000)

const DIR = path.join(ROOT, 'config/examples')
// tls.yaml names its certificate files through the environment: real ones, made by openssl for this run
const certs = makeCerts()
const CHAT = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })

/** What each example needs from the environment (README says so in the file's first lines). */
const NEEDS: Record<string, Record<string, string>> = {
  'cache.yaml': { OPENAI_API_KEY: 'sk-upstream-primary', TEAM_A_KEY: 'team-a-demo-key' },
  'openai.yaml': { OPENAI_API_KEY: 'sk-upstream-primary', TEAM_A_KEY: 'team-a-demo-key', TEAM_B_KEY: 'team-b-demo-key' },
  'retries.yaml': { OPENAI_API_KEY: 'sk-upstream-primary', OPENAI_BACKUP_API_KEY: 'sk-upstream-backup' },
  'redis.yaml': { OPENAI_API_KEY: 'sk-upstream-primary', TEAM_A_KEY: 'team-a-demo-key' },
  'prices.yaml': { OPENAI_API_KEY: 'sk-upstream-primary' },
  'ledger.yaml': { OPENAI_API_KEY: 'sk-upstream-primary', TEAM_A_KEY: 'team-a-demo-key', GRAFANA_TOKEN: 'grafana-demo-token' },
  'budgets.yaml': { OPENAI_API_KEY: 'sk-upstream-primary', TEAM_A_KEY: 'team-a-demo-key', TRIAL_KEY: 'trial-demo-key' },
  'jwt.yaml': { OPENAI_API_KEY: 'sk-upstream-primary' },
  'tls.yaml': { LEAKY_TLS_CERT: certs.server.cert, LEAKY_TLS_KEY: certs.server.key, OPENAI_API_KEY: 'sk-upstream-primary', TEAM_A_KEY: 'team-a-demo-key' },
  'keys.yaml': { OPENAI_API_KEY: 'sk-upstream-primary', ADMIN_TOKEN: 'admin-demo-token', GRAFANA_TOKEN: 'grafana-demo-token' },
  'tracing.yaml': { OPENAI_API_KEY: 'sk-upstream-primary' },
  'frontdoor.yaml': { OPENAI_API_KEY: 'sk-upstream-primary', ANTHROPIC_API_KEY: 'sk-ant-upstream', GEMINI_API_KEY: 'gemini-upstream', DASHSCOPE_API_KEY: 'sk-dashscope-upstream' },
  'traffic.yaml': { OPENAI_API_KEY: 'sk-upstream-primary' },
}

const files = readdirSync(DIR).sort()
const leakyFiles = files.filter((f) => f.endsWith('.yaml'))

t.test('every example is a leaky config or the Prometheus one', async (t) => {
  t.same(files.filter((f) => !leakyFiles.includes(f)), ['prometheus.yml'])
  t.same(leakyFiles, Object.keys(NEEDS).sort(), 'each leaky config has its environment listed here')
})

for (const file of leakyFiles) {
  t.test(`${file} loads with its environment, and names each variable it lacks without it`, async (t) => {
    const r = loadConfigFile(path.join(DIR, file), NEEDS[file])
    t.ok(r.ok, r.ok ? 'valid' : r.issues.map(formatIssue).join('\n'))
    const text = readFileSync(path.join(DIR, file), 'utf8')
    t.match(text.split('\n')[0], `# config/examples/${file} — `, 'the first line names the file (README quotes it)')
    for (const name of Object.keys(NEEDS[file])) t.match(text.split('\n').slice(0, 4).join('\n'), name, `its header says it needs ${name}`)
    const bare = loadConfigFile(path.join(DIR, file), {})
    t.notOk(bare.ok, 'invalid without them')
    if (!bare.ok) {
      const missing = bare.issues.map((i) => /environment variable (\w+) is not set/.exec(i.message)?.[1])
      t.same([...new Set(missing)].sort(), Object.keys(NEEDS[file]).sort(), 'every issue is a missing variable, each one named')
    }
  })
}

/** A proxy on an example file, on free ports, with a runtime dir of its own (pid file, control socket). */
async function startExample(t: Test, file: string, env: Record<string, string>): Promise<Proxy> {
  const run = mkdtempSync(path.join(tmpdir(), 'leaky-example-'))
  t.teardown(() => rmSync(run, { recursive: true, force: true }))
  const p = await startProxy(path.join(DIR, file), {
    env: { ...NEEDS[file], LEAKY_LISTEN: '127.0.0.1:0', LEAKY_ADMIN_LISTEN: '127.0.0.1:0', LEAKY_RUNTIME_DIR: run, RUNTIME_DIRECTORY: run, ...env },
  })
  t.teardown(() => p.stop())
  return p
}

/** A stub standing in for api.openai.com; `seen` collects what the proxy sent it. */
async function fakeOpenAI(t: Test): Promise<{ origin: string; seen: StubRequestEvent[] }> {
  const { stub, origin } = await startStub({ seed: 1 })
  t.teardown(() => stub.close())
  const seen: StubRequestEvent[] = []
  stub.on('request', (e: StubRequestEvent) => seen.push(e))
  return { origin, seen }
}

async function chat(p: Proxy, urlPath: string, key?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (key !== undefined) headers.authorization = `Bearer ${key}`
  const res = await request(p.url(urlPath), { method: 'POST', headers, body: CHAT })
  return { status: res.statusCode, body: await res.body.json() }
}

t.test('openai.yaml: virtual keys in, the real key out; no key 401; /stub/ anonymous on the embedded stub', async (t) => {
  const openai = await fakeOpenAI(t)
  const p = await startExample(t, 'openai.yaml', { LEAKY_OPENAI_URL: openai.origin })

  const a = await chat(p, '/v1/chat/completions', 'team-a-demo-key')
  t.equal(a.status, 200)
  t.equal(a.body.object, 'chat.completion')
  const b = await chat(p, '/v1/chat/completions', 'team-b-demo-key')
  t.equal(b.status, 200)
  t.equal(openai.seen.length, 2, 'both went to the OpenAI upstream')
  for (const e of openai.seen) {
    t.equal(e.headers.authorization, 'Bearer sk-upstream-primary', 'with the upstream key, never the client\'s')
    t.equal(e.url, '/v1/chat/completions')
  }
  await p.waitLog((l) => l.msg === 'access' && l.key_id === 'team-b')
  t.same(p.access().map((l) => [l.key_id, l.upstream]), [['team-a-bot', 'openai'], ['team-b', 'openai']], 'each key by its id')

  const none = await request(p.url('/v1/models'))
  t.equal(none.statusCode, 401, 'no key')
  t.equal((await none.body.json() as any).error.code, 'LEAKY_UNAUTHORIZED')
  t.equal((await chat(p, '/v1/chat/completions', 'not-a-key')).status, 401, 'an unknown key')
  t.equal(openai.seen.length, 2, 'nothing forwarded without a valid key')

  const anon = await chat(p, '/stub/v1/chat/completions')
  t.equal(anon.status, 200, 'anonymous on /stub/')
  t.equal(anon.body.object, 'chat.completion')
  t.equal(openai.seen.length, 2, 'answered by the embedded stub')
  await p.waitLog((l) => l.msg === 'access' && l.route === '/stub/')
  t.equal(p.access().at(-1)!.upstream, 'stub')
})

t.test('cache.yaml: a repeated deterministic prompt is answered from the cache; a sampled one always goes upstream', async (t) => {
  const openai = await fakeOpenAI(t)
  const p = await startExample(t, 'cache.yaml', { LEAKY_OPENAI_URL: openai.origin })
  const post = async (temperature: number) => {
    const res = await request(p.url('/v1/chat/completions'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer team-a-demo-key' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], temperature }),
    })
    return { xCache: res.headers['x-cache'], text: await res.body.text() }
  }
  const a = await post(0)
  const b = await post(0)
  t.same([a.xCache, b.xCache], ['MISS', 'HIT'])
  t.equal(b.text, a.text, 'the stored answer')
  t.equal((await post(1)).xCache, 'BYPASS', 'when: deterministic')
  t.equal(openai.seen.length, 2, 'the hit never reached OpenAI')
})

/** A local port nothing listens on: connections are refused. */
async function closedPort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const port = (srv.address() as net.AddressInfo).port
  srv.close()
  await once(srv, 'close')
  return port
}

t.test('retries.yaml: OpenAI refusing connections → two retries, then the backup account with its own key', async (t) => {
  const backup = await fakeOpenAI(t)
  const p = await startExample(t, 'retries.yaml', {
    LEAKY_OPENAI_URL: `http://127.0.0.1:${await closedPort()}`,
    LEAKY_OPENAI_BACKUP_URL: backup.origin,
  })
  const r = await chat(p, '/v1/chat/completions')
  t.equal(r.status, 200)
  t.equal(r.body.object, 'chat.completion')
  t.equal(backup.seen.length, 1)
  t.equal(backup.seen[0].headers.authorization, 'Bearer sk-upstream-backup', 'the backup\'s key, not the primary\'s')
  const line = await p.waitLog((l) => l.msg === 'access')
  t.equal(line.upstream, 'openai-backup', 'answered by the fallback')
  t.equal(line.attempts, 4, '1 attempt + 2 retries on openai, then the fallback')
})

t.test('prices.yaml: a model priced only by the config gets its cost on the access line', async (t) => {
  const openai = await fakeOpenAI(t)
  const p = await startExample(t, 'prices.yaml', { LEAKY_OPENAI_URL: openai.origin })
  const res = await request(p.url('/v1/chat/completions'), {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'my-finetune', messages: [{ role: 'user', content: 'hi' }] }),
  })
  t.equal(res.statusCode, 200)
  await res.body.dump()
  const line = await p.waitLog((l) => l.msg === 'access')
  const pico = (line.tokens_prompt as number) * 300_000 + (line.tokens_completion as number) * 1_200_000
  t.equal(line.cost_usd, (Math.round(pico / 1e6) / 1e6).toFixed(6), `${line.tokens_prompt} + ${line.tokens_completion} tokens at 0.30 / 1.20`)
})

t.test('ledger.yaml: a request lands in leaky-usage.sqlite beside the state file; the viewer reads it at /admin/usage', async (t) => {
  const openai = await fakeOpenAI(t)
  const state = mkdtempSync(path.join(tmpdir(), 'leaky-state-'))
  t.teardown(() => rmSync(state, { recursive: true, force: true }))
  const p = await startExample(t, 'ledger.yaml', { LEAKY_OPENAI_URL: openai.origin, LEAKY_STATE_DIR: state })
  t.equal((await chat(p, '/v1/chat/completions', 'team-a-demo-key')).status, 200)
  const line = await p.waitLog((l) => l.msg === 'access')
  const usage = async () => {
    const r = await request(`http://127.0.0.1:${p.adminPort}/admin/usage?by=org&since=1h`, { headers: { authorization: 'Bearer grafana-demo-token' } })
    t.equal(r.statusCode, 200)
    return (await r.body.json()) as { rows: Array<{ group: string; requests: number; tokens_total: number; cost_usd: string }> }
  }
  // the worker hands its rows over within a second: asked until they are there
  let report = await usage()
  for (let i = 0; i < 50 && report.rows.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 100))
    report = await usage()
  }
  t.same(report.rows.map((r) => [r.group, r.requests, r.tokens_total, r.cost_usd]), [['acme', 1, line.tokens_total, line.cost_usd]])
  t.ok(readdirSync(state).includes('leaky-usage.sqlite'), 'the ledger sits beside the state file')
})

t.test('redis.yaml: cluster limits decided by Redis, local ones not', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const openai = await fakeOpenAI(t)
  const p = await startExample(t, 'redis.yaml', { LEAKY_REDIS_URL: redis.url, LEAKY_OPENAI_URL: openai.origin })
  const r = await chat(p, '/v1/chat/completions', 'team-a-demo-key')
  t.equal(r.status, 200)
  const line = await p.waitLog((l) => l.msg === 'access')
  t.equal(line.cluster, 'redis', 'the cluster limits were decided by Redis')
  t.equal(line.key_id, 'team-a-bot')
  t.equal(openai.seen[0].headers.authorization, 'Bearer sk-upstream-primary')
  const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await client.connect()
  const stats = await client.info('commandstats')
  client.disconnect()
  t.match(stats, /cmdstat_(evalsha|eval):calls=[1-9]/, 'the proxy ran its script on this Redis')

  // Redis gone: provider-tpm has on_error: closed ("never overshoot the account"), so the route answers 503
  await redis.stop()
  const down = await chat(p, '/v1/chat/completions', 'team-a-demo-key')
  t.equal(down.status, 503)
  t.equal(down.body.error.code, 'LEAKY_REDIS_UNAVAILABLE')
  t.equal(openai.seen.length, 1, 'not forwarded')
})

t.test('jwt.yaml: a token from the IdP (JWKS served locally) in, the real key out; its claims as key, org and tier', async (t) => {
  const key = await signingKey('idp-1', 'RS256')
  const jwks = await startJwks([key.jwk])
  t.teardown(() => jwks.close())
  const openai = await fakeOpenAI(t)
  const p = await startExample(t, 'jwt.yaml', {
    LEAKY_OPENAI_URL: openai.origin, LEAKY_JWKS_URL: jwks.url, LEAKY_JWT_ISSUER: ISSUER, LEAKY_JWT_AUDIENCE: AUDIENCE,
  })
  const r = await chat(p, '/v1/chat/completions', await sign(key, { sub: 'alice@example.com', org_id: 'acme', plan: 'pro' }))
  t.equal(r.status, 200)
  t.equal(openai.seen[0].headers.authorization, 'Bearer sk-upstream-primary', 'the upstream key, never the token')
  const line = await p.waitLog((l) => l.msg === 'access')
  t.equal(line.key_id, 'alice@example.com')
  const none = await chat(p, '/v1/chat/completions')
  t.equal(none.status, 401)
  t.equal(none.body.error.code, 'LEAKY_JWT_MISSING')
  t.equal(openai.seen.length, 1, 'nothing forwarded without a token')
})

t.test('tls.yaml: HTTPS with the certificate from the environment, the same routes on the plain listener', async (t) => {
  const openai = await fakeOpenAI(t)
  const plain = await closedPort()
  const p = await startExample(t, 'tls.yaml', { LEAKY_OPENAI_URL: openai.origin, LEAKY_PLAIN_LISTEN: `127.0.0.1:${plain}` })
  const agent = new Agent({ connect: { ca: readFileSync(certs.ca) } })
  t.teardown(() => agent.close())
  const headers = { 'content-type': 'application/json', authorization: 'Bearer team-a-demo-key' }
  const r = await request(`https://localhost:${p.port}/v1/chat/completions`, { method: 'POST', headers, body: CHAT, dispatcher: agent })
  t.equal(r.statusCode, 200)
  t.equal(((await r.body.json()) as { object: string }).object, 'chat.completion')
  t.equal(openai.seen[0].headers.authorization, 'Bearer sk-upstream-primary')
  const h = await request(`http://127.0.0.1:${plain}/v1/chat/completions`, { method: 'POST', headers, body: CHAT })
  t.equal(h.statusCode, 200, 'listen_plain')
  await h.body.text()
  const anon = await request(`https://localhost:${p.port}/v1/models`, { dispatcher: agent })
  t.equal(anon.statusCode, 401, 'keys still apply over TLS')
  await anon.body.text()
})

t.test('tracing.yaml: a client\'s sampled trace is continued and exported; a 429 is exported though not sampled', async (t) => {
  const rx = new OtlpReceiver()
  await rx.listen()
  t.teardown(() => rx.close())
  const openai = await fakeOpenAI(t)
  const p = await startExample(t, 'tracing.yaml', { LEAKY_OPENAI_URL: openai.origin, LEAKY_OTLP_ENDPOINT: rx.endpoint })
  const res = await request(p.url('/v1/chat/completions'), {
    method: 'POST', body: CHAT,
    headers: { 'content-type': 'application/json', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
  })
  await res.body.dump()
  t.equal(res.statusCode, 200)
  await rx.until(() => rx.spans.some((s) => s.kind === 2))
  const server = rx.spans.find((s) => s.kind === 2)!
  t.match(server, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentSpanId: '00f067aa0ba902b7', resource: { 'service.name': 'leaky-tokens' } })
  t.match(server.attrs, { 'gen_ai.system': 'openai', 'gen_ai.request.model': 'gpt-4o-mini', 'http.response.status_code': 200 })
  // burst 20 of ip-rps: the 21st request in a row is refused, and sample_denied exports it
  let denied = 0
  for (let i = 0; i < 25 && denied === 0; i++) {
    const r = await request(p.url('/v1/chat/completions'), { method: 'POST', body: CHAT, headers: { 'content-type': 'application/json' } })
    await r.body.dump()
    if (r.statusCode === 429) denied++
  }
  t.equal(denied, 1)
  await rx.until(() => rx.spans.some((s) => s.attrs['http.response.status_code'] === 429))
  t.match(rx.spans.find((s) => s.attrs['http.response.status_code'] === 429)!.attrs, { 'leaky.limit': 'ip-rps', 'leaky.trace.tail': 'denied' })
})

const promtool = spawnSync('sh', ['-c', 'command -v promtool']).status === 0
t.test('keys.yaml: a key made through the admin API serves at once; grafana may read but not manage keys; audited', async (t) => {
  const openai = await fakeOpenAI(t)
  const state = mkdtempSync(path.join(tmpdir(), 'leaky-state-'))
  t.teardown(() => rmSync(state, { recursive: true, force: true }))
  const p = await startExample(t, 'keys.yaml', { LEAKY_OPENAI_URL: openai.origin, LEAKY_STATE_DIR: state })
  const admin = (method: 'GET' | 'POST', token: string, body?: unknown) => request(`http://127.0.0.1:${p.adminPort}/admin/keys`, {
    method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  })
  const made = await admin('POST', 'admin-demo-token', { id: 'team-c', org: 'team-c', tier: 'gold', expires: '30d' })
  t.equal(made.statusCode, 201)
  const { secret } = (await made.body.json()) as { secret: string }
  t.equal((await chat(p, '/v1/chat/completions', secret)).status, 200, 'served without a reload')
  t.equal((await chat(p, '/v1/chat/completions', 'foo')).status, 200, 'the config key (sha256 of "foo")')
  const viewer = await admin('GET', 'grafana-demo-token')
  t.equal(viewer.statusCode, 403)
  await viewer.body.dump()
  const list = await admin('GET', 'admin-demo-token')
  t.match(await list.body.json(), { enabled: true, keys: [{ id: 'ci-bot', read_only: true }, { id: 'team-c', read_only: false, tier: 'gold' }] })
  const audit = readFileSync(path.join(state, 'audit.log'), 'utf8')
  t.match(audit, /"event":"key","action":"create","target":"team-c","result":"ok","via":"admin-api","token_id":"ops"/)
  t.notMatch(audit, secret)
})

t.test('prometheus.yml: promtool accepts it, and the shipped alert rules where it expects them', { skip: promtool ? false : 'promtool is not installed (test/preflight.test.ts says how to get it)' }, async (t) => {
  const file = path.join(DIR, 'prometheus.yml')
  const syntax = spawnSync('promtool', ['check', 'config', '--syntax-only', file], { encoding: 'utf8' })
  t.equal(syntax.status, 0, syntax.stdout + syntax.stderr)
  // the full check loads the rule file too: the same file, with /etc/prometheus/leaky-alerts.yml in a temp dir
  const dir = mkdtempSync(path.join(tmpdir(), 'leaky-prom-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const text = readFileSync(file, 'utf8')
  t.match(text, '/etc/prometheus/leaky-alerts.yml')
  copyFileSync(path.join(ROOT, 'config/prometheus-alerts.yml'), path.join(dir, 'leaky-alerts.yml'))
  writeFileSync(path.join(dir, 'prometheus.yml'), text.replace('/etc/prometheus/leaky-alerts.yml', path.join(dir, 'leaky-alerts.yml')))
  const full = spawnSync('promtool', ['check', 'config', path.join(dir, 'prometheus.yml')], { encoding: 'utf8' })
  t.equal(full.status, 0, full.stdout + full.stderr)
  t.match(full.stdout, /SUCCESS: \d+ rules found/)
})
