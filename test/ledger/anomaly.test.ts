// Usage anomalies on the detector the ledger writer feeds: a key and its org at a steady rate are quiet; a minute
// at 10× is one event each (tokens; cost stays normal), held as one episode while it lasts and raised again after
// it came back under; a new key is not judged during its warm-up; a jump below the absolute minimum is no anomaly;
// a quiet key's baseline decays; the counts and the log line say what, who, when, how much and against what.
import t from 'tap'
import { AnomalyDetector, type Anomaly } from '../../src/ledger/anomaly.js'
import { LedgerWriter } from '../../src/ledger/writer.js'
import type { LedgerRow } from '../../src/ledger/row.js'
import type { Logger } from '../../src/observability/logger.js'

const lines: Array<Record<string, unknown>> = []
// the detector logs through pino's interface: a sink that keeps the objects is enough to read them back
const sink = { warn: (o: Record<string, unknown>) => lines.push(o), info() {}, error() {} } as unknown as Logger
const cfg = { enabled: true, factor: 5, min_tokens: 1000, min_cost_usd: 0.01, half_life: 3_600_000, warmup: 1_800_000 }
const M0 = 29_000_000

function row(minute: number, key: string, org: string, tokens: number, micro: number): LedgerRow {
  return [minute, key, org, 'gpt-4o', '/v1/', 2, 1, tokens, 0, 0, 0, tokens, micro, 0]
}

t.test('steady, then a spike: one event per subject and episode, after the warm-up only', async (t) => {
  const d = new AnomalyDetector(cfg, sink)
  const minute = (m: number, rows: LedgerRow[]) => {
    d.observe(rows)
    return d.judge(M0 + m + 1)
  }
  // 60 steady minutes: key k (org o) 2,000 tokens and 1,000 micro-USD a minute; key s 10 tokens a minute
  for (let m = 0; m < 60; m++) t.same(minute(m, [row(M0 + m, 'k', 'o', 2000, 1000), row(M0 + m, 's', '', 10, 1)]), [], `minute ${m}: quiet`)
  const spike = minute(60, [row(M0 + 60, 'k', 'o', 20_000, 1000), row(M0 + 60, 's', '', 500, 1), row(M0 + 60, 'new', '', 50_000, 9_000_000)])
  t.same(spike.map((a) => [a.subject, a.id, a.metric, a.minute, a.value]), [['key', 'k', 'tokens', M0 + 60, 20_000], ['org', 'o', 'tokens', M0 + 60, 20_000]],
    'k and its org on tokens; not cost (normal), not s (under min_tokens), not the new key (warm-up)')
  t.ok(spike[0].baseline > 1900 && spike[0].baseline <= 2000, `baseline ${spike[0].baseline}: the steady rate`)
  t.same(minute(61, [row(M0 + 61, 'k', 'o', 20_000, 1000)]), [], 'still high: the same episode')
  t.same(minute(62, [row(M0 + 62, 'k', 'o', 2000, 1000)]), [], 'back to normal')
  t.same(minute(63, [row(M0 + 63, 'k', 'o', 60_000, 1000)]).map((a) => a.id), ['k', 'o'], 'a new episode')
  const c = new Map(d.counts)
  t.equal(c.get('key\0tokens'), 2)
  t.equal(c.get('org\0tokens'), 2)
  t.equal(c.get('key\0cost'), 0)
  const line = lines.find((l) => l.id === 'k')!
  t.match(line, { msg: 'usage anomaly', subject: 'key', id: 'k', metric: 'tokens', minute: new Date((M0 + 60) * 60_000).toISOString(), value: 20_000, factor: 5 })
})

t.test('cost: a jump in micro-USD over the minimum; quiet minutes decay a baseline', async (t) => {
  const d = new AnomalyDetector(cfg, sink)
  for (let m = 0; m < 40; m++) {
    d.observe([row(M0 + m, 'k', '', 100, 5_000)])
    t.same(d.judge(M0 + m + 1), [])
  }
  d.observe([row(M0 + 40, 'k', '', 100, 100_000)])
  t.same(d.judge(M0 + 41).map((a) => [a.metric, a.value]), [['cost', 100_000]], '$0.10 in a minute against $0.005')
  // an hour of silence, then the old rate 8× over is an anomaly again: the baseline decayed toward 0
  d.observe([row(M0 + 101, 'k', '', 100, 40_000)])
  const after = d.judge(M0 + 102)
  t.same(after.map((a) => a.metric), ['cost'])
  t.ok(after[0].baseline < 5_000, `baseline ${after[0].baseline} decayed while k was quiet`)
})

t.test('off: nothing judged', async (t) => {
  const d = new AnomalyDetector({ ...cfg, enabled: false }, sink)
  d.observe([row(M0, 'k', '', 1e9, 1e9)])
  t.same(d.judge(M0 + 100), [])
})

t.test('the writer hands each anomaly it judges on (the generation sends them to the anomaly webhooks)', async (t) => {
  const w = new LedgerWriter(sink)
  w.anomalies = new AnomalyDetector(cfg, sink)
  const handed: Anomaly[] = []
  w.onAnomaly = (a) => handed.push(a)
  for (let m = 0; m < 40; m++) {
    w.anomalies.observe([row(M0 + m, 'w', '', 1_000, 10)])
    t.same(w.judge(M0 + m + 1), [])
  }
  w.anomalies.observe([row(M0 + 40, 'w', '', 20_000, 10)])
  const found = w.judge(M0 + 41)
  t.same(found.map((a) => [a.subject, a.id, a.metric]), [['key', 'w', 'tokens']])
  t.same(handed, found, 'handed on, each once')
})
