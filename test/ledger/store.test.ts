// The usage ledger's SQLite file and its reports, on real files: a file of every earlier schema version opens
// migrated with its rows intact; a newer one is refused; a file that is not a database is moved aside; batches add
// to existing rows (minute and day); retention drops old rows; reports sum exactly what the rows hold, from the
// minute rows or, for an older range, the day rows; the text formats carry the same numbers.
import t from 'tap'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { scratchDir } from '../helpers/scratch.js'
import { LedgerStore, LedgerError, LEDGER_VERSION, MIGRATIONS, createAtVersion } from '../../src/ledger/store.js'
import { formatReport, microUsd, parseQuery, parseTime, usageReport } from '../../src/ledger/report.js'
import type { LedgerRow } from '../../src/ledger/row.js'

const MIN = 60_000
const DAY = 86_400_000
// a fixed "now": 2026-12-07T12:00:30Z (mid-minute: the minute that began at 12:00 is in a range ending now)
const NOW = Date.UTC(2026, 11, 7, 12, 0, 30)
const m = (t: number) => Math.floor(t / MIN)

function row(minute: number, key: string, org: string, model: string, route: string, cls: number, requests: number, prompt: number, completion: number, costMicro: number, unpriced = 0): LedgerRow {
  return [minute, key, org, model, route, cls, requests, prompt, completion, 0, 0, prompt + completion, costMicro, unpriced]
}

t.equal(LEDGER_VERSION, MIGRATIONS.length, 'the version is the number of migrations')

for (let from = 0; from < LEDGER_VERSION; from++) {
  t.test(`a ledger at schema version ${from} opens migrated to ${LEDGER_VERSION}, rows kept`, async (t) => {
    const file = path.join(scratchDir(), 'usage.sqlite')
    const db = createAtVersion(file, from)
    if (from >= 1) {
      db.prepare(`INSERT INTO usage_minute (minute, key, org, model, route, status_class, requests, tokens_total, cost_micro) VALUES (?, 'k', 'o', 'gpt-4o', '/v1/', 2, 3, 30, 7)`).run(m(NOW))
      db.prepare(`INSERT INTO usage_day (day, key, org, model, route, status_class, requests, tokens_total, cost_micro) VALUES (?, 'k', 'o', 'gpt-4o', '/v1/', 2, 3, 30, 7)`).run(Math.floor(NOW / DAY))
    }
    db.close()
    const s = LedgerStore.open(file)
    t.teardown(() => s.close())
    t.equal(s.version(), LEDGER_VERSION)
    s.write([row(m(NOW), 'k', 'o', 'gpt-4o', '/v1/', 2, 1, 10, 5, 2)])
    const r = usageReport(s, { by: 'key', since: NOW - 3_600_000, until: NOW + MIN }, 14 * DAY, NOW)
    t.same(r.rows.map((x) => [x.group, x.requests, x.cost_usd]), [['k', from >= 1 ? 4 : 1, from >= 1 ? '0.000009' : '0.000002']])
  })
}

t.test('a ledger written by a newer version is refused, not misread', async (t) => {
  const file = path.join(scratchDir(), 'u.sqlite')
  const db = createAtVersion(file, LEDGER_VERSION)
  db.pragma(`user_version = ${LEDGER_VERSION + 1}`)
  db.close()
  t.throws(() => LedgerStore.open(file, { moveCorrupt: true }), { message: new RegExp(`usage ledger ${file}: schema version ${LEDGER_VERSION + 1} was written by a newer leaky`) })
  t.ok(existsSync(file), 'not moved aside: it is fine, just newer')
})

t.test('a file that is not a database is moved aside, the error names both', async (t) => {
  const dir = scratchDir()
  const file = path.join(dir, 'u.sqlite')
  writeFileSync(file, 'this is not sqlite, just garbage '.repeat(200))
  let err: LedgerError | null = null
  try {
    LedgerStore.open(file, { moveCorrupt: true })
  } catch (e) {
    err = e as LedgerError
  }
  t.ok(err instanceof LedgerError)
  t.match(err!.message, `usage ledger ${file}: not a usable SQLite database`)
  t.match(err!.aside, /u\.sqlite\.bad-/)
  t.notOk(existsSync(file))
  t.equal(readdirSync(dir).filter((f) => f.startsWith('u.sqlite.bad-')).length, 1)
})

t.test('a place that cannot hold the file: a clear error naming it', async (t) => {
  const dir = scratchDir()
  writeFileSync(path.join(dir, 'plain-file'), '')
  const file = path.join(dir, 'plain-file', 'u.sqlite')
  t.throws(() => LedgerStore.open(file, { moveCorrupt: true }), { message: new RegExp(`usage ledger ${file}: .*ENOTDIR`) })
  const missing = path.join(dir, 'nope.sqlite')
  t.throws(() => LedgerStore.open(missing, { create: false }), { message: new RegExp(`usage ledger ${missing}: does not exist`) })
})

t.test('batches add up per row, minute and day; retention drops old rows', async (t) => {
  const s = LedgerStore.open(path.join(scratchDir(), 'u.sqlite'))
  t.teardown(() => s.close())
  const now = m(NOW)
  s.write([row(now, 'a', 'acme', 'gpt-4o', '/v1/', 2, 2, 100, 50, 1000), row(now - 1, 'a', 'acme', 'gpt-4o', '/v1/', 2, 1, 10, 5, 100)])
  s.write([row(now, 'a', 'acme', 'gpt-4o', '/v1/', 2, 3, 300, 150, 3000), row(now, 'b', '', 'gemini-2.5-flash', '/g/', 4, 1, 0, 0, 0)])
  // 20 days ago (beyond minute retention) and 500 days ago (beyond day retention)
  s.write([row(now - 20 * 1440, 'a', 'acme', 'gpt-4o', '/v1/', 2, 7, 70, 0, 700), row(now - 500 * 1440, 'a', 'acme', 'gpt-4o', '/v1/', 2, 9, 90, 0, 900)])
  const minutes = s.all('SELECT minute, key, requests, tokens_prompt, cost_micro FROM usage_minute ORDER BY minute, key', [])
  t.same(minutes.map((r) => [r.minute, r.key, r.requests, r.tokens_prompt, r.cost_micro]), [
    [now - 500 * 1440, 'a', 9, 90, 900], [now - 20 * 1440, 'a', 7, 70, 700], [now - 1, 'a', 1, 10, 100], [now, 'a', 5, 400, 4000], [now, 'b', 1, 0, 0],
  ])
  const today = s.all('SELECT key, requests, cost_micro FROM usage_day WHERE day = ? ORDER BY key', [Math.floor(NOW / DAY)])
  t.same(today.map((r) => [r.key, r.requests, r.cost_micro]), [['a', 6, 4100], ['b', 1, 0]], 'day rows hold the sums of their minutes')
  const gone = s.prune(NOW, 14 * DAY, 400 * DAY)
  t.same(gone, { minutes: 2, days: 1 })
  t.same(s.all('SELECT count(*) AS n FROM usage_minute WHERE minute < ?', [now - 14 * 1440])[0].n, 0)
  t.same(s.all('SELECT count(*) AS n FROM usage_day', [])[0].n, 3, 'the day row of 20 days ago stays')
  t.equal(s.oldestMinute(), (now - 1) * MIN)
})

t.test('reports: each dimension sums the rows; an old range reads the day rows', async (t) => {
  const s = LedgerStore.open(path.join(scratchDir(), 'u.sqlite'))
  t.teardown(() => s.close())
  const now = m(NOW)
  s.write([
    row(now, 'a', 'acme', 'gpt-4o', '/v1/', 2, 2, 100, 50, 1_500_000),
    row(now - 60, 'b', 'acme', 'gpt-4o-mini', '/v1/', 2, 1, 10, 5, 20),
    row(now - 60, 'c', '', 'gemini-2.5-flash', '/g/', 5, 4, 0, 0, 0, 0),
    row(now - 10 * 1440, 'a', 'acme', 'gpt-4o', '/v1/', 2, 10, 1000, 500, 5_000_000, 2),
    row(now - 40 * 1440, 'a', 'acme', 'gpt-4o', '/v1/', 2, 1, 1, 1, 1),
  ])
  const q = (raw: { by?: string; since?: string; until?: string }) => {
    const p = parseQuery(raw, NOW)
    if (typeof p === 'string') throw new Error(p)
    return usageReport(s, p, 14 * DAY, NOW)
  }
  const byKey = q({ by: 'key', since: '7d' })
  t.equal(byKey.granularity, 'minute')
  t.same(byKey.rows.map((r) => [r.group, r.requests, r.tokens_total, r.cost_usd]), [['a', 2, 150, '1.500000'], ['b', 1, 15, '0.000020'], ['c', 4, 0, '0.000000']], 'largest cost first')
  t.same(byKey.total, { requests: 7, tokens_prompt: 110, tokens_completion: 55, tokens_cached: 0, tokens_thoughts: 0, tokens_total: 165, cost_usd: '1.500020', unpriced: 0 })
  t.same(q({ by: 'org', since: '7d' }).rows.map((r) => [r.group, r.requests]), [['acme', 3], ['', 4]])
  t.same(q({ by: 'status', since: '7d' }).rows.map((r) => [r.group, r.requests]), [['2xx', 3], ['5xx', 4]])
  t.same(q({ by: 'route', since: '2h' }).rows.map((r) => r.group), ['/v1/', '/g/'])
  t.same(q({ by: 'model', since: '30m' }).rows.map((r) => r.group), ['gpt-4o'], '30m leaves out the rows of an hour ago')
  const month = q({ by: 'day', since: '30d' })
  t.equal(month.granularity, 'day', 'older than the minute retention: day rows')
  t.equal(month.since, new Date(Math.floor((NOW - 30 * DAY) / DAY) * DAY).toISOString(), 'widened to whole days')
  t.same(month.rows.map((r) => [r.group, r.requests, r.unpriced]), [['2026-11-27', 10, 2], ['2026-12-07', 7, 0]])
  t.same(q({ by: 'month', since: '2026-10-01', until: '2026-12-31' }).rows.map((r) => [r.group, r.requests, r.cost_usd]),
    [['2026-10', 1, '0.000001'], ['2026-11', 10, '5.000000'], ['2026-12', 7, '1.500020']])
  // the text forms carry the same numbers
  const csv = formatReport(byKey, 'csv').split('\r\n')
  t.equal(csv[0], 'key,requests,tokens_prompt,tokens_completion,tokens_cached,tokens_thoughts,tokens_total,cost_usd,unpriced')
  t.equal(csv[1], 'a,2,100,50,0,0,150,1.500000,0')
  t.same(JSON.parse(formatReport(byKey, 'json')), byKey)
  const table = formatReport(byKey, 'table').split('\n')
  t.match(table[0], /^usage by key, .* \(minute rows\)$/)
  t.match(table.at(-2), /^total\s+7\s+110\s+55\s+0\s+0\s+165\s+1\.500020\s+0$/)
})

t.test('query parsing: bad input says what was expected', async (t) => {
  t.equal(parseTime('7d', NOW), NOW - 7 * DAY)
  t.equal(parseTime('2026-12-01', NOW), Date.UTC(2026, 11, 1))
  t.equal(parseTime('2026-12', NOW), Date.UTC(2026, 11, 1))
  t.equal(parseTime('2026-12-01T06:00:00+01:00', NOW), Date.UTC(2026, 11, 1, 5))
  t.equal(parseTime('yesterday', NOW), null)
  t.match(parseQuery({ by: 'colour' }, NOW), /^by: expected one of key, org, model, route, status, day, month, got "colour"/)
  t.match(parseQuery({ since: 'soon' }, NOW), /^since: expected a duration/)
  t.match(parseQuery({ since: '1d', until: '2d' }, NOW), /must be after since/)
  t.equal(microUsd(1_234_567), '1.234567')
  // a model name that starts like a spreadsheet formula stays text
  const s = LedgerStore.open(path.join(scratchDir(), 'u.sqlite'))
  t.teardown(() => s.close())
  s.write([row(m(NOW), 'a', '', '=HYPERLINK("x")', '/v1/', 2, 1, 1, 1, 1)])
  const r = usageReport(s, { by: 'model', since: NOW - DAY, until: NOW }, 14 * DAY, NOW)
  t.equal(formatReport(r, 'csv').split('\r\n')[1].split(',')[0], `"'=HYPERLINK(""x"")"`)
})

t.test('rows for Postgres: marked only with shipping on; a row that changed after it was sent stays marked', async (t) => {
  const s = LedgerStore.open(path.join(scratchDir(), 'u.sqlite'))
  t.teardown(() => s.close())
  s.write([row(m(NOW), 'a', '', 'gpt-4o', '/v1/', 2, 1, 1, 1, 1)])
  t.equal(s.unshippedCount(), 0, 'no Postgres configured: nothing waits')
  s.shipping = true
  s.write([row(m(NOW), 'a', '', 'gpt-4o', '/v1/', 2, 1, 1, 1, 1), row(m(NOW), 'b', '', 'gpt-4o', '/v1/', 2, 1, 1, 1, 1)])
  const sent = s.unshipped(10)
  t.same(sent.map((r) => [r[1], r[6]]), [['a', 2], ['b', 1]], 'whole sums, not deltas')
  // while the batch is on its way, a flush adds to row b
  s.write([row(m(NOW), 'b', '', 'gpt-4o', '/v1/', 2, 1, 1, 1, 1)])
  s.markShipped(sent)
  t.same(s.unshipped(10).map((r) => [r[1], r[6]]), [['b', 2]], 'b changed after it was sent: it goes again')
})
