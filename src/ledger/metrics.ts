// The usage ledger on /metrics: read from the generation's writer (writer.ts) at scrape time.
import { Counter, Gauge, type Registry } from 'prom-client'
import type { LedgerWriter } from './writer.js'
import { ANOMALY_METRICS, ANOMALY_SUBJECTS } from './anomaly.js'

export function registerLedgerMetrics(registry: Registry, w: LedgerWriter): void {
  const value = (name: string, help: string, get: () => number) =>
    new Counter({ name, help, registers: [registry], collect(this: Counter) {
      this.reset()
      this.inc(get())
    } })
  new Gauge({
    name: 'leaky_ledger_enabled',
    help: 'The usage ledger is written: 1, or 0 when it is off or its file could not be opened (see the log: "usage ledger disabled").',
    registers: [registry],
    collect(this: Gauge) {
      this.set(w.store !== null ? 1 : 0)
    },
  })
  new Gauge({
    name: 'leaky_ledger_pending_rows',
    help: 'Summed usage rows waiting for the next ledger flush.',
    registers: [registry],
    collect(this: Gauge) {
      this.set(w.pendingRows)
    },
  })
  new Gauge({
    name: 'leaky_ledger_unshipped_rows',
    help: 'Minute rows in the ledger file not yet shipped to Postgres (ledger.postgres); they ship once it answers.',
    registers: [registry],
    collect(this: Gauge) {
      this.set(w.shipper !== null && w.store !== null ? w.store.unshippedCount() : 0)
    },
  })
  value('leaky_ledger_shipped_rows_total', 'Minute rows sent to Postgres (a row sent again after it changed counts again).', () => w.shipped.shipped)
  value('leaky_ledger_ship_errors_total', 'Shipping runs to Postgres that failed; the rows stay queued in the ledger file.', () => w.shipped.errors)
  new Gauge({
    name: 'leaky_ledger_open_failed',
    help: 'The configured usage ledger could not be opened (unwritable, corrupt and moved aside, newer schema): 1; the proxy serves without it.',
    registers: [registry],
    collect(this: Gauge) {
      this.set(w.openFailed ? 1 : 0)
    },
  })
  new Counter({
    name: 'leaky_usage_anomalies_total',
    help: 'Usage anomalies: a key\'s or org\'s tokens or cost in a minute over ledger.anomaly.factor × its own baseline (one per episode; see the "usage anomaly" log line).',
    labelNames: ['subject', 'metric'],
    registers: [registry],
    collect(this: Counter) {
      this.reset()
      for (const s of ANOMALY_SUBJECTS) for (const m of ANOMALY_METRICS) this.inc({ subject: s, metric: m }, w.anomalies?.counts.get(`${s}\0${m}`) ?? 0)
    },
  })
  value('leaky_ledger_rows_written_total', 'Usage rows written to the ledger (one per minute, key, org, model, route and status class per flush).', () => w.counters.rows)
  value('leaky_ledger_write_errors_total', 'Ledger flushes that failed; their rows stay pending for the next one.', () => w.counters.writeErrors)
  value('leaky_ledger_rows_dropped_total', 'Usage rows dropped because the pending rows were full while writes failed.', () => w.counters.dropped)
}
