// Dashboards and alerts as code: config/grafana-dashboard.json is an importable dashboard whose every query is
// valid PromQL over metrics the proxy really exports; config/prometheus-alerts.yml passes `promtool check rules` and
// its promtool unit tests (each alert fires on the series it is about).
import t from 'tap'
import { registerLedgerMetrics } from '../../src/ledger/metrics.js'
import { LedgerWriter } from '../../src/ledger/writer.js'
import { createLogger } from '../../src/observability/logger.js'
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import path from 'node:path'
// its temp dirs are in this file's scratch directory, removed when its tests end
import '../helpers/scratch.js'
import { parse as parseYaml } from 'yaml'
import { parseConfig } from '../../src/config/index.js'
import { MetricsHub } from '../../src/observability/hub.js'
import { ROOT } from '../helpers/proxy.js'
import { promtoolPath, NO_PROMTOOL } from '../fixtures/observability/prom.js'

const DASHBOARD = path.join(ROOT, 'config/grafana-dashboard.json')
const ALERTS = path.join(ROOT, 'config/prometheus-alerts.yml')
const ALERT_TESTS = path.join(ROOT, 'test/fixtures/observability/alerts.test.yml')

/** Every series name a full exposition can contain, histogram suffixes included. */
async function exportedNames(): Promise<Set<string>> {
  const r = parseConfig('{}', 'x.yaml', {})
  if (!r.ok) throw new Error('config')
  const hub = new MetricsHub(r.config, { workers: 1, generation: 1, inflight: new SharedArrayBuffer(8) })
  hub.setLimiterProbe({ table: () => ({ used: 0, capacity: 1, evicted: 0, full: 0 }), fill: () => [] })
  // the generation registers the ledger's metrics on the same registry
  registerLedgerMetrics(hub.registry, new LedgerWriter(createLogger({ level: 'silent', bindings: {} }).logger))
  const names = new Set<string>()
  for (const m of hub.registry.getMetricsAsArray()) {
    const { name, type } = (await m.get()) as { name: string; type: string }
    names.add(name)
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s)
  }
  return names
}

function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:leaky|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1])
}

interface Panel {
  id: number
  type: string
  title: string
  gridPos: { x: number; y: number; w: number; h: number }
  datasource?: { uid: string }
  targets?: Array<{ expr: string; refId: string }>
}

const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  uid: string; title: string; schemaVersion: number; panels: Panel[]
  templating: { list: Array<{ name: string; type: string }> }
}

t.test('the dashboard is an importable Grafana dashboard', async (t) => {
  t.equal(dash.uid, 'leaky-tokens')
  t.equal(dash.title, 'leaky-tokens')
  t.ok(dash.schemaVersion >= 36)
  const vars = dash.templating.list.map((v) => v.name)
  t.same(vars, ['datasource', 'instance'])
  t.equal(dash.templating.list[0].type, 'datasource')
  const ids = dash.panels.map((p) => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  const cells = new Set<string>()
  for (const p of dash.panels) {
    t.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title}: inside the 24-column grid`)
    for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
      for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
        const c = `${x},${y}`
        if (cells.has(c)) t.fail(`${p.title} overlaps another panel at ${c}`)
        cells.add(c)
      }
    }
    if (p.type === 'row') continue
    t.equal(p.datasource?.uid, '${datasource}', `${p.title}: uses the datasource variable`)
    t.ok(p.targets && p.targets.length > 0, `${p.title}: has queries`)
  }
  t.ok(dash.panels.filter((p) => p.type !== 'row').length >= 20)
})

t.test('every metric the dashboard and the alerts name is exported', async (t) => {
  const names = await exportedNames()
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr))
  const rules = (parseYaml(readFileSync(ALERTS, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }).groups.flatMap((g) => g.rules)
  for (const e of [...exprs, ...rules.map((r) => r.expr)]) {
    for (const n of metricNames(e)) t.ok(names.has(n), `${n} is exported`)
  }
  const alerts = rules.map((r) => r.alert)
  for (const want of ['LeakyHigh5xxRatio', 'LeakyTimeToFirstByteP99OverSLO', 'LeakyUpstreamBreakerOpen', 'LeakyKeyRateLimited',
    'LeakyTokenBudgetNearExhaustion', 'LeakyConfigReloadFailed', 'LeakyRestarts', 'LeakyRedisDown', 'LeakyRedisFallbackDecisions',
    'LeakyUsageAnomaly', 'LeakyLedgerOpenFailed'])
    t.ok(alerts.includes(want), `alert ${want}`)
})

t.test('promtool: the alert rules check and pass their unit tests; every dashboard query is valid PromQL', async (t) => {
  if (promtoolPath() === null) return t.skip(NO_PROMTOOL)
  const check = spawnSync('promtool', ['check', 'rules', ALERTS], { encoding: 'utf8' })
  t.equal(check.status, 0, `${check.stdout}${check.stderr}`)
  const unit = spawnSync('promtool', ['test', 'rules', ALERT_TESTS], { encoding: 'utf8' })
  t.equal(unit.status, 0, `${unit.stdout}${unit.stderr}`)
  // dashboard queries become recording rules, Grafana's variables replaced as Grafana would, for promtool to parse
  const rules = dash.panels.flatMap((p) => (p.targets ?? []).map((x, i) => ({
    record: `dashboard:panel_${p.id}_${i}`,
    expr: x.expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '1h').replaceAll('$instance', '.*'),
  })))
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'leaky-dash-')), 'queries.yml')
  writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }))
  const q = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' })
  t.equal(q.status, 0, `${q.stdout}${q.stderr}`)
  t.match(q.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`))
})
