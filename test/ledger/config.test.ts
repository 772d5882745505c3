// The ledger section of the config: defaults, where the file goes, and bad input reported at file:line:col with
// the expected form (unknown keys with a suggestion, a non-Postgres URL, an anomaly factor that could never fire).
import t from 'tap'
import { parseConfig, formatIssue } from '../../src/config/index.js'
import { ledgerFile } from '../../src/ledger/file.js'

function load(yaml: string) {
  const r = parseConfig(yaml, 'c.yaml', {})
  return r.ok ? r.config : r.issues.map(formatIssue)
}

t.test('defaults: off without state_file or file; beside state_file; 5 s flush, 14 d / 400 d, anomaly 5×', async (t) => {
  const none = load('{}')
  if (Array.isArray(none)) return t.fail(none.join('\n'))
  t.equal(ledgerFile(none), null)
  t.match(none.ledger, { enabled: true, flush: 5_000, retention: { minutes: 14 * 86_400_000, days: 400 * 86_400_000 }, anomaly: { enabled: true, factor: 5, min_tokens: 10_000, min_cost_usd: 0.1 } })
  t.equal(none.ledger.postgres, undefined)
  const beside = load('state_file: /var/lib/leaky/buckets.snap\n')
  if (Array.isArray(beside)) return t.fail(beside.join('\n'))
  t.equal(ledgerFile(beside), '/var/lib/leaky/leaky-usage.sqlite')
  const off = load('state_file: /var/lib/leaky/buckets.snap\nledger: { enabled: false }\n')
  if (Array.isArray(off)) return t.fail(off.join('\n'))
  t.equal(ledgerFile(off), null, 'enabled: false wins')
  const pg = load('ledger: { file: /x/u.sqlite, postgres: { url: "postgres://u@db/usage" } }\n')
  if (Array.isArray(pg)) return t.fail(pg.join('\n'))
  t.match(pg.ledger.postgres, { url: 'postgres://u@db/usage', interval: 10_000 })
})

t.test('bad input: file:line:col and what was expected', async (t) => {
  t.same(load('ledger:\n  flsh: 5s\n'), ['c.yaml:2:3 ledger.flsh: unknown key "flsh" (did you mean "flush"?)'])
  t.match(load('ledger:\n  flush: 5\n'), [/^c\.yaml:2:10 ledger\.flush: expected a duration/])
  t.match(load('ledger:\n  postgres: { url: "mysql://db/x" }\n'), [/^c\.yaml:2:20 ledger\.postgres\.url: expected postgres:\/\/… or postgresql:\/\/…/])
  t.match(load('ledger:\n  anomaly: { factor: 1 }\n'), [/^c\.yaml:2:22 ledger\.anomaly\.factor: /])
  t.match(load('ledger:\n  anomaly: { min_cost_usd: -1 }\n'), [/^c\.yaml:2:28 ledger\.anomaly\.min_cost_usd: /])
})
