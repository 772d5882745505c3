// Usage ledger micro-benchmark: how fast the one writer puts rows into SQLite, and how the file grows. Plain node
// on dist/ (build first: npx tsc -p tsconfig.build.json).
//
//   node bench/micro/ledger.mjs            (~40 s on 2 loaded cores; BENCH_ROWS=100000 for a smoke run)
//
// Cases:
//   merge     a generation's main thread merging worker batches (LedgerWriter.take): requests summed per second,
//             1 M requests in batches of 1,000 over 100 distinct rows (50 keys × 4 models × 2 routes × 5 minutes, overlapping)
//   write     LedgerStore.write of distinct minute rows in batches of 5,000 (what one flush of a busy proxy holds),
//             each also added to its day row: rows per second, and the file's size scaled to 1 M minute rows
//   rewrite   the same rows written again (every row an update, as a flush adding to the current minute's rows)
// A row is one (minute, key, org, model, route, status class): the file grows with distinct rows, not requests —
// 1 M requests from one key and model in one minute are one row.
// Results: a table on stdout, JSON as ledger.json in <tmpdir>/leaky-bench/, or in bench/results/ with RECORD=1.
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { LedgerStore } from '../../dist/ledger/store.js'
import { LedgerWriter } from '../../dist/ledger/writer.js'
import { writeResults } from '../record.mjs'

const ROWS = Number(process.env.BENCH_ROWS ?? 500_000)
const BATCH = 5_000
const dir = mkdtempSync(path.join(os.tmpdir(), 'leaky-ledger-bench-'))
const results = []

function rowAt(i) {
  // 2,000 keys in 50 orgs, 4 models, 2 routes, 2 status classes; minutes advance every 32,000 rows
  const key = i % 2000
  return [29_000_000 + Math.floor(i / 32_000), `key-${key}`, `org-${key % 50}`, ['gpt-4o', 'gpt-4o-mini', 'gemini-2.5-flash', 'claude-sonnet-4-5'][(i >> 11) & 3],
    (i >> 13) & 1 ? '/v1/' : '/gemini/', (i >> 14) & 1 ? 2 : 4, 1, 812, 240, 0, 0, 1052, 1234, 0]
}

try {
  // merge
  {
    const silent = { info() {}, error() {}, warn() {} }
    const w = new LedgerWriter(silent)
    // an open store is what makes take() keep rows; no flush runs during the measurement
    const file = path.join(dir, 'merge.sqlite')
    w.configure({ state_file: undefined, ledger: { enabled: true, file, flush: 3_600_000, retention: { minutes: 14 * 86_400_000, days: 400 * 86_400_000 } } })
    const batch = []
    for (let i = 0; i < 1000; i++) batch.push([29_000_000 + (i % 5), `key-${i % 50}`, 'org', ['a', 'b', 'c', 'd'][i % 4], i % 2 ? '/v1/' : '/g/', 2, 1, 800, 200, 0, 0, 1000, 1200, 0])
    const n = 1000
    const t0 = performance.now()
    for (let b = 0; b < n; b++) w.take({ type: 'usage', rows: batch.map((r) => r.slice()) })
    const ms = performance.now() - t0
    results.push({ case: 'merge', requests: n * batch.length, rows: w.pendingRows, per_s: Math.round((n * batch.length) / (ms / 1000)), ms: Math.round(ms) })
    await w.close()
  }
  // write + rewrite
  const file = path.join(dir, 'write.sqlite')
  const store = LedgerStore.open(file)
  for (const name of ['write', 'rewrite']) {
    const t0 = performance.now()
    for (let i = 0; i < ROWS; i += BATCH) {
      const rows = []
      for (let j = i; j < Math.min(ROWS, i + BATCH); j++) rows.push(rowAt(j))
      store.write(rows)
    }
    const ms = performance.now() - t0
    store.all('PRAGMA wal_checkpoint(TRUNCATE)', [])
    const bytes = statSync(file).size
    results.push({ case: name, rows: ROWS, per_s: Math.round(ROWS / (ms / 1000)), ms: Math.round(ms), file_mb: +(bytes / 2 ** 20).toFixed(1), mb_per_million_rows: +((bytes / 2 ** 20) * (1e6 / ROWS)).toFixed(1) })
  }
  store.close()
} finally {
  rmSync(dir, { recursive: true, force: true })
}

console.table(results)
writeResults('ledger.json', { rows: ROWS, batch: BATCH, results })
