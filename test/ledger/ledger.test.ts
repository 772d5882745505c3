// The usage ledger through a real proxy (2 workers, the stub upstream reporting exact usage): after a SIGTERM the
// file holds exactly the sums of the access lines (requests, tokens, cost, per key, org, model, route and status
// class), although the flush interval (1 h) never came — the stop flushed; `leaky usage` and GET /admin/usage
// report the same numbers; a corrupt file is moved aside at start and the proxy serves with the ledger off, said by
// a log line, leaky_ledger_enabled 0 and a 503 from /admin/usage. Upgrade and kill -9: lifecycle.test.ts.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import Database from 'better-sqlite3'
import { Agent, request } from 'undici'
import { CLI, metricValue, scrapeMetrics, startProxy, writeConfig, type LogLine, type Proxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { scratchDir } from '../helpers/scratch.js'

const { stub, origin } = await startStub({ seed: 21 })
const agent = new Agent({ pipelining: 0, connections: 1, keepAliveTimeout: 1 })
t.teardown(async () => {
  await agent.close()
  await stub.close()
})
const dir = scratchDir('ledger-')
const ledgerFile = path.join(dir, 'usage.sqlite')
const VIEWER = 'viewer-token-for-usage-reports'
// baseConfig's lines, with an admin section that has a viewer token
const yaml = (flush: string, file = ledgerFile) => `listen: 127.0.0.1:0
workers: 2
drain_timeout: 5s
log: { level: info }
ledger: { file: ${file}, flush: ${flush} }
admin:
  listen: 127.0.0.1:0
  tokens:
    - { id: grafana, token: "${VIEWER}", role: viewer }
keys:
  - { id: team-a, key: "team-a-secret", org: acme }
  - { id: team-b, key: "team-b-secret", org: acme }
  - { id: solo, key: "solo-secret" }
upstreams:
  llm: { provider: openai, targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: llm, auth: key }
  - { path: /open/, upstream: llm, strip_prefix: true }
`

async function call(p: Proxy, path: string, key: string, model: string, stream: boolean, headers: Record<string, string> = {}): Promise<number> {
  const r = await request(p.url(path), {
    method: 'POST', dispatcher: agent,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
    body: JSON.stringify({ model, stream, max_tokens: 30, messages: [{ role: 'user', content: `count the cost of ${model}` }] }),
  })
  await r.body.text()
  const id = r.headers['x-request-id'] as string
  await p.waitLog((l) => l.msg === 'access' && l.req_id === id)
  return r.statusCode
}

/** A mix: three keys, two orgs, priced and unpriced models, JSON and SSE, 2xx, 4xx from the upstream and the proxy. */
async function traffic(p: Proxy): Promise<void> {
  const plan: Array<[string, string, string, boolean, Record<string, string>?]> = [
    ['/v1/chat/completions', 'team-a-secret', 'gpt-4o-mini', false],
    ['/v1/chat/completions', 'team-a-secret', 'gpt-4o-mini', true],
    ['/v1/chat/completions', 'team-a-secret', 'gpt-4o', false],
    ['/v1/chat/completions', 'team-b-secret', 'gpt-4o-mini', true],
    ['/v1/chat/completions', 'team-b-secret', 'my-finetune', false],
    ['/v1/chat/completions', 'solo-secret', 'gpt-4o', true],
    ['/v1/chat/completions', 'solo-secret', 'gpt-4o', false, { 'x-stub-error': '400' }],
    ['/v1/chat/completions', 'wrong-secret', 'gpt-4o', false],
    ['/open/v1/chat/completions', '', 'gpt-4o-mini', false],
    ['/nowhere', 'team-a-secret', 'gpt-4o', false],
  ]
  for (let round = 0; round < 3; round++) for (const [p2, key, model, stream, h] of plan) await call(p, p2, key, model, stream, h)
}

interface Sums { requests: number; prompt: number; completion: number; total: number; micro: number; unpriced: number }
const zero = (): Sums => ({ requests: 0, prompt: 0, completion: 0, total: 0, micro: 0, unpriced: 0 })

/** The access lines summed per (key, org, model, route, status class), as the ledger keys its rows. */
function fromAccess(lines: LogLine[], org: (key: string) => string): Map<string, Sums> {
  const out = new Map<string, Sums>()
  for (const l of lines) {
    const key = (l.key_id as string | undefined) ?? ''
    const k = [key, org(key), (l.model as string | undefined) ?? '', (l.route as string | null) ?? '', Math.floor((l.status as number) / 100)].join('|')
    const s = out.get(k) ?? zero()
    s.requests++
    s.prompt += (l.tokens_prompt as number | undefined) ?? 0
    s.completion += (l.tokens_completion as number | undefined) ?? 0
    s.total += (l.tokens_total as number | undefined) ?? 0
    if (l.cost_usd !== undefined) s.micro += Math.round(Number(l.cost_usd) * 1e6)
    else if (l.tokens_source === 'reported') s.unpriced++
    out.set(k, s)
  }
  return out
}

function fromLedger(file: string): Map<string, Sums> {
  const db = new Database(file, { readonly: true })
  try {
    const rows = db.prepare(`SELECT key, org, model, route, status_class, sum(requests) AS requests, sum(tokens_prompt) AS prompt,
      sum(tokens_completion) AS completion, sum(tokens_total) AS total, sum(cost_micro) AS micro, sum(unpriced) AS unpriced
      FROM usage_minute GROUP BY key, org, model, route, status_class`).all() as Array<Record<string, string | number>>
    const out = new Map<string, Sums>()
    for (const r of rows) {
      out.set([r.key, r.org, r.model, r.route, r.status_class].join('|'), {
        requests: r.requests as number, prompt: r.prompt as number, completion: r.completion as number, total: r.total as number, micro: r.micro as number, unpriced: r.unpriced as number,
      })
    }
    return out
  } finally {
    db.close()
  }
}

const ORGS: Record<string, string> = { 'team-a': 'acme', 'team-b': 'acme' }
const orgOf = (k: string) => ORGS[k] ?? ''
const sorted = (m: Map<string, Sums>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1))

t.test('after SIGTERM the ledger holds exactly the access lines\' sums; the stop flushed (interval 1 h)', async (t) => {
  const p = await startProxy(yaml('1h'))
  t.teardown(() => p.stop())
  await traffic(p)
  const m = await scrapeMetrics(p)
  t.equal(metricValue(m, 'leaky_ledger_enabled'), 1)
  t.equal(metricValue(m, 'leaky_ledger_rows_written_total'), 0, 'nothing written before the stop: the interval is 1 h')
  t.equal(metricValue(m, 'leaky_ledger_open_failed'), 0)
  t.equal(metricValue(m, 'leaky_usage_anomalies_total', 'subject="key",metric="tokens"'), 0, 'anomalies exported, none yet (warm-up)')
  t.equal(await p.stop('SIGTERM'), 0)
  const access = p.access()
  t.equal(access.length, 30)
  const want = fromAccess(access, orgOf)
  t.ok([...want.keys()].some((k) => k.endsWith('|4')) && [...want.keys()].some((k) => k.startsWith('solo||gpt-4o|/v1/|2')), 'the mix has 2xx and 4xx rows, keys with and without an org')
  t.ok([...want.values()].some((s) => s.unpriced > 0) && [...want.values()].some((s) => s.micro > 0), 'priced and unpriced models')
  t.same(sorted(fromLedger(ledgerFile)), sorted(want))
  const db = new Database(ledgerFile, { readonly: true })
  t.teardown(() => db.close())
  const [minute, day] = ['usage_minute', 'usage_day'].map((tbl) => db.prepare(`SELECT sum(requests) AS r, sum(tokens_total) AS tk, sum(cost_micro) AS c FROM ${tbl}`).get())
  t.same(day, minute, 'the day rows hold the same sums')
})

t.test('leaky usage reads the file: the same numbers in json, csv and table', async (t) => {
  const file = writeConfig(yaml('1h'))
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'usage', '-c', file, ...args], { encoding: 'utf8' })
  const j = run('--by', 'key', '--since', '1h', '--format', 'json')
  t.equal(j.status, 0, j.stderr)
  const report = JSON.parse(j.stdout) as { rows: Array<{ group: string; requests: number; tokens_total: number; cost_usd: string }>; total: { requests: number } }
  const perKey = new Map<string, Sums>()
  for (const [k, s] of fromLedger(ledgerFile)) {
    const key = k.split('|')[0]
    const a = perKey.get(key) ?? zero()
    a.requests += s.requests
    a.total += s.total
    a.micro += s.micro
    perKey.set(key, a)
  }
  t.same(new Map(report.rows.map((r) => [r.group, [r.requests, r.tokens_total, Math.round(Number(r.cost_usd) * 1e6)]])),
    new Map([...perKey].map(([k, s]) => [k, [s.requests, s.total, s.micro]])))
  t.equal(report.total.requests, 30)
  const csv = run('--by', 'org', '--since', '1h', '--format', 'csv')
  t.equal(csv.status, 0, csv.stderr)
  t.match(csv.stdout, /^org,requests,/)
  t.match(csv.stdout, /\r\nacme,15,/, 'team-a and team-b: 5 + 5 requests per round')
  const table = run('--by', 'status')
  t.match(table.stdout, /^2xx\s+21\s/m)
  t.match(table.stdout, /^4xx\s+9\s/m)
  const bad = run('--by', 'colour')
  t.equal(bad.status, 1)
  t.match(bad.stderr, /leaky: --by: expected one of key, org, model, route, status, day, month, got "colour"/)
})

t.test('GET /admin/usage (viewer): the ledger with what is pending flushed first; bad parameters 400', async (t) => {
  const p = await startProxy(yaml('1h'))
  t.teardown(() => p.stop())
  await call(p, '/v1/chat/completions', 'solo-secret', 'gpt-4o-mini', false)
  const get = async (q: string, token = VIEWER) => {
    const r = await request(`http://127.0.0.1:${p.adminPort}/admin/usage${q}`, { headers: { authorization: `Bearer ${token}` } })
    return { status: r.statusCode, body: (await r.body.json()) as Record<string, unknown> }
  }
  // the worker hands its rows over within a second; the answer flushes what the main thread holds
  let r = await get('?by=key&since=1h')
  for (let i = 0; i < 50 && (r.body.total as { requests: number }).requests < 31; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    r = await get('?by=key&since=1h')
  }
  t.equal(r.status, 200)
  const rows = r.body.rows as Array<{ group: string; requests: number }>
  t.equal(rows.find((x) => x.group === 'solo')?.requests, 2 * 3 + 1, 'solo: 2 per round, plus this one')
  t.equal((r.body.total as { requests: number }).requests, 31)
  t.equal(r.body.granularity, 'minute')
  // the status page's spend panel reads the same file: today by org and by model as the report says
  const today = new Date().toISOString().slice(0, 10)
  const byOrg = await get(`?by=org&since=${today}`)
  const byModel = await get(`?by=model&since=${today}`)
  const st = await request(`http://127.0.0.1:${p.adminPort}/status.json`, { headers: { authorization: `Bearer ${VIEWER}` } })
  const spend = ((await st.body.json()) as { spend: { ledger: boolean; today: { requests: number; total_usd: string; by_org: unknown[]; by_model: unknown[] } } }).spend
  t.equal(spend.ledger, true)
  const pick = (rows: unknown) => (rows as Array<{ group: string; requests: number; tokens_total: number; cost_usd: string }>)
    .map((x) => ({ group: x.group, requests: x.requests, tokens: x.tokens_total, cost_usd: x.cost_usd }))
  t.same(spend.today.by_org, pick(byOrg.body.rows), 'spend panel by org = the report')
  t.same(spend.today.by_model, pick(byModel.body.rows), 'spend panel by model = the report')
  t.equal(spend.today.total_usd, (byOrg.body.total as { cost_usd: string }).cost_usd)
  t.equal(spend.today.requests, 31)
  const bad = await get('?by=colour')
  t.equal(bad.status, 400)
  t.match(bad.body, { error: { code: 'LEAKY_BAD_REQUEST', message: /by: expected one of/ } })
  t.equal((await get('?since=1h&format=csv')).status, 400, 'unknown parameter')
  t.equal((await get('?by=key', 'not-a-token')).status, 401)
})

t.test('a corrupt ledger file: moved aside at start, the proxy serves with the ledger off and says so', async (t) => {
  const d = scratchDir('corrupt-')
  const file = path.join(d, 'usage.sqlite')
  writeFileSync(file, 'not a database at all '.repeat(300))
  const p = await startProxy(yaml('1s', file))
  t.teardown(() => p.stop())
  const line = await p.waitLog((l) => l.msg === 'usage ledger disabled; the proxy serves without it')
  t.equal(line.level, 'error')
  t.match(line.reason, `usage ledger ${file}: not a usable SQLite database`)
  t.match(line.moved_to, /usage\.sqlite\.bad-/)
  t.ok(existsSync(line.moved_to as string))
  t.equal(readdirSync(d).filter((f) => f.startsWith('usage.sqlite.bad-')).length, 1)
  t.equal(await call(p, '/v1/chat/completions', 'team-a-secret', 'gpt-4o-mini', false), 200, 'serves')
  const m = await scrapeMetrics(p)
  t.equal(metricValue(m, 'leaky_ledger_enabled'), 0)
  t.equal(metricValue(m, 'leaky_ledger_open_failed'), 1, 'configured but failed: the alert\'s metric')
  const r = await request(`http://127.0.0.1:${p.adminPort}/admin/usage`, { headers: { authorization: `Bearer ${VIEWER}` } })
  const st = await request(`http://127.0.0.1:${p.adminPort}/status.json`, { headers: { authorization: `Bearer ${VIEWER}` } })
  t.match(await st.body.json(), { spend: { ledger: false, today: null, month: null } }, 'the spend panel says there is no ledger')
  t.equal(r.statusCode, 503)
  t.match(await r.body.json(), { error: { code: 'LEAKY_LEDGER_DISABLED', message: /usage ledger is off: usage ledger .*not a usable SQLite database/ } })
})
