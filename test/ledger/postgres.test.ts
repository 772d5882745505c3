// Shipping the ledger to a real PostgreSQL server (initdb + postgres started here, on a free port in the scratch
// dir): the proxy's minute rows arrive in Postgres with exactly the SQLite file's values; a batch sent again (a retry
// after a lost acknowledgement) and a second proxy id never double count; while Postgres is down requests are served
// and the rows stay queued in SQLite, then ship when it is back; a Postgres schema from a newer leaky is refused.
import t from 'tap'
import path from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { Agent, request } from 'undici'
import { spawnSync } from 'node:child_process'
import { CLI, metricValue, scrapeMetrics, startProxy, writeConfig, type Proxy } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { scratchDir } from '../helpers/scratch.js'
import { startPostgres } from '../helpers/postgres.js'
import { LedgerStore } from '../../src/ledger/store.js'
import { migratePostgres, PG_VERSION, PostgresShipper } from '../../src/ledger/postgres.js'
import { createLogger } from '../../src/observability/logger.js'

const db = await startPostgres()
const { stub, origin } = await startStub({ seed: 3 })
const agent = new Agent({ pipelining: 0, connections: 1, keepAliveTimeout: 1 })
const client = new pg.Client({ connectionString: db.url })
// the test's own connection dies with the server when a test stops it: not an error of the test
client.on('error', () => undefined)
t.teardown(async () => {
  await client.end().catch(() => undefined)
  await agent.close()
  await stub.close()
  await db.stop()
})

async function pgRows(proxy?: string): Promise<string[]> {
  const r = await client.query(`SELECT proxy, minute, key, org, model, route, status_class, requests, tokens_prompt, tokens_completion, tokens_total, cost_micro, unpriced
    FROM leaky_usage_minute ${proxy === undefined ? '' : 'WHERE proxy = $1'} ORDER BY proxy, minute, key, model, route, status_class`, proxy === undefined ? [] : [proxy])
  return r.rows.map((x: Record<string, unknown>) => Object.values(x).join('|'))
}

function sqliteRows(file: string, proxy: string): string[] {
  const d = new Database(file, { readonly: true })
  try {
    return (d.prepare(`SELECT minute, key, org, model, route, status_class, requests, tokens_prompt, tokens_completion, tokens_total, cost_micro, unpriced
      FROM usage_minute ORDER BY minute, key, model, route, status_class`).raw().all() as unknown[][]).map((r) => [proxy, ...r].join('|'))
  } finally {
    d.close()
  }
}

async function until(what: () => Promise<boolean>, label: string): Promise<void> {
  // Postgres and the proxy's timers give no event to await here: poll, bounded
  for (let i = 0; i < 200; i++) {
    if (await what()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out: ${label}`)
}

async function chat(p: Proxy, i: number): Promise<void> {
  const started = performance.now()
  const r = await request(p.url('/v1/chat/completions'), {
    method: 'POST', dispatcher: agent,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${i % 2 === 0 ? 'team-a-secret' : 'team-b-secret'}` },
    body: JSON.stringify({ model: i % 3 === 0 ? 'gpt-4o' : 'gpt-4o-mini', max_tokens: 20, messages: [{ role: 'user', content: `ship ${i}` }] }),
  })
  await r.body.text()
  if (r.statusCode !== 200) throw new Error(`status ${r.statusCode} after ${performance.now() - started} ms`)
}

t.test('a proxy ships its minute rows: Postgres holds exactly the SQLite file\'s; down → queued, back → shipped', async (t) => {
  await client.connect()
  const file = path.join(scratchDir('pgledger-'), 'usage.sqlite')
  const config = writeConfig(`listen: 127.0.0.1:0
workers: 2
drain_timeout: 5s
admin: { listen: 127.0.0.1:0 }
ledger:
  file: ${file}
  flush: 100ms
  postgres: { url: "${db.url}", proxy: proxy-a, interval: 200ms }
keys:
  - { id: team-a, key: "team-a-secret", org: acme }
  - { id: team-b, key: "team-b-secret" }
upstreams:
  llm: { provider: openai, targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: llm, auth: key }
`)
  const p = await startProxy(config)
  t.teardown(() => p.stop())
  for (let i = 0; i < 8; i++) await chat(p, i)
  await until(async () => sqliteRows(file, 'proxy-a').reduce((a, r) => a + Number(r.split('|')[7]), 0) === 8, 'all 8 in the file')
  await until(async () => {
    try {
      return JSON.stringify(await pgRows()) === JSON.stringify(sqliteRows(file, 'proxy-a'))
    } catch {
      return false // the table is made by the first shipping
    }
  }, 'Postgres has the file\'s rows')
  t.same(await pgRows(), sqliteRows(file, 'proxy-a'), 'row for row, the same values')
  t.equal(metricValue(await scrapeMetrics(p), 'leaky_ledger_unshipped_rows'), 0)

  // Postgres goes down: requests are served all the same, rows wait in the file
  await client.end()
  await db.stop()
  for (let i = 8; i < 14; i++) await chat(p, i)
  await until(async () => {
    const m = await scrapeMetrics(p)
    return metricValue(m, 'leaky_ledger_ship_errors_total') >= 1 && metricValue(m, 'leaky_ledger_unshipped_rows') >= 1
  }, 'a failed shipping and queued rows')
  await p.waitLog((l) => l.msg === 'usage ledger: shipping to Postgres failed; rows stay queued in SQLite')
  // back: the queue drains, and Postgres ends up with the file's rows, nothing counted twice
  await db.start()
  const again = new pg.Client({ connectionString: db.url })
  again.on('error', () => undefined)
  await again.connect()
  const rows = async () => (await again.query(`SELECT proxy, minute, key, org, model, route, status_class, requests, tokens_prompt, tokens_completion, tokens_total, cost_micro, unpriced
    FROM leaky_usage_minute ORDER BY proxy, minute, key, model, route, status_class`)).rows.map((x: Record<string, unknown>) => Object.values(x).join('|'))
  await until(async () => JSON.stringify(await rows()) === JSON.stringify(sqliteRows(file, 'proxy-a')), 'shipped after Postgres came back')
  const total = await again.query('SELECT sum(requests)::int AS n FROM leaky_usage_minute')
  t.equal(total.rows[0].n, 14, 'every request once')
  await p.waitLog((l) => l.msg === 'usage ledger ships to Postgres again')
  t.equal(metricValue(await scrapeMetrics(p), 'leaky_ledger_unshipped_rows'), 0)

  // the report reads either: the fleet's Postgres (one proxy here) says what this proxy's file says
  const usage = (...args: string[]) => spawnSync(process.execPath, [CLI, 'usage', '-c', config, '--since', '1h', '--format', 'json', ...args], { encoding: 'utf8' })
  for (const by of ['key', 'model', 'status', 'day']) {
    const a = usage('--by', by, '--from', 'postgres')
    const b = usage('--by', by)
    t.equal(a.status, 0, a.stderr)
    const [fromPg, fromFile] = [JSON.parse(a.stdout), JSON.parse(b.stdout)]
    t.same(fromPg.rows, fromFile.rows, `by ${by}: the same rows from Postgres and from the file`)
    t.equal(fromPg.total.requests, 14)
  }
  await again.end()
  await db.stop()
  const down = usage('--from', 'postgres')
  t.equal(down.status, 1)
  t.match(down.stderr, /^leaky: Postgres \(ledger\.postgres\.url\): /)
  await db.start()
})

t.test('idempotent: a batch sent again, or by an older generation, never adds; proxies are kept apart', async (t) => {
  const c = new pg.Client({ connectionString: db.url })
  await c.connect()
  t.teardown(() => c.end())
  const file = path.join(scratchDir('pgidem-'), 'u.sqlite')
  const store = LedgerStore.open(file)
  store.shipping = true
  t.teardown(() => store.close())
  const { logger } = createLogger({ level: 'silent', bindings: {} })
  const ship = new PostgresShipper(db.url, 'proxy-b', logger)
  t.teardown(() => ship.close())
  const minute = 29_000_000
  store.write([[minute, 'k', 'o', 'gpt-4o', '/v1/', 2, 3, 30, 10, 0, 0, 40, 500, 0]])
  await ship.ship(store)
  const sum = async () => (await c.query("SELECT requests::int, cost_micro::int FROM leaky_usage_minute WHERE proxy = 'proxy-b'")).rows
  t.same(await sum(), [{ requests: 3, cost_micro: 500 }])
  // the acknowledgement was lost: the same rows go again
  const raw = new Database(file)
  raw.prepare('UPDATE usage_minute SET dirty = 1').run()
  raw.close()
  t.equal(store.unshippedCount(), 1)
  await ship.ship(store)
  t.same(await sum(), [{ requests: 3, cost_micro: 500 }], 'sent twice, counted once')
  // the row grows and ships again: its new whole value, not a sum with the old one
  store.write([[minute, 'k', 'o', 'gpt-4o', '/v1/', 2, 2, 20, 5, 0, 0, 25, 100, 0]])
  await ship.ship(store)
  t.same(await sum(), [{ requests: 5, cost_micro: 600 }])
  // an older snapshot arriving late (a draining generation's batch) does not lower it
  await c.query(`INSERT INTO leaky_usage_minute (proxy, minute, key, org, model, route, status_class, requests, tokens_prompt, tokens_completion, tokens_cached, tokens_thoughts, tokens_total, cost_micro, unpriced)
    VALUES ('proxy-b', $1, 'k', 'o', 'gpt-4o', '/v1/', 2, 3, 30, 10, 0, 0, 40, 500, 0)
    ON CONFLICT (proxy, minute, key, org, model, route, status_class) DO UPDATE SET requests = GREATEST(leaky_usage_minute.requests, excluded.requests), cost_micro = GREATEST(leaky_usage_minute.cost_micro, excluded.cost_micro)`, [minute])
  t.same(await sum(), [{ requests: 5, cost_micro: 600 }])
  // another proxy with the same dimensions: its own row
  const other = new PostgresShipper(db.url, 'proxy-c', logger)
  t.teardown(() => other.close())
  const raw2 = new Database(file)
  raw2.prepare('UPDATE usage_minute SET dirty = 1').run()
  raw2.close()
  await other.ship(store)
  const both = await c.query('SELECT proxy, requests::int FROM leaky_usage_minute WHERE minute = $1 ORDER BY proxy', [minute])
  t.same(both.rows, [{ proxy: 'proxy-b', requests: 5 }, { proxy: 'proxy-c', requests: 5 }])
})

t.test('the Postgres schema: versioned; a newer one is refused', async (t) => {
  const c = new pg.Client({ connectionString: db.url })
  await c.connect()
  t.teardown(() => c.end())
  t.equal(await migratePostgres(c), PG_VERSION, 'already at the current version: nothing to do')
  await c.query("UPDATE leaky_schema SET version = $1 WHERE component = 'ledger'", [PG_VERSION + 1])
  await t.rejects(migratePostgres(c), { message: `ledger schema version ${PG_VERSION + 1} in Postgres was written by a newer leaky (this one knows up to ${PG_VERSION}); upgrade leaky` })
  await c.query("UPDATE leaky_schema SET version = $1 WHERE component = 'ledger'", [PG_VERSION])
})
