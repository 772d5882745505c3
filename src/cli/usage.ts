// `leaky usage`: a report from the usage ledger, read straight from its SQLite file (the config's ledger.file or
// the one beside state_file), so it works whether or not the proxy runs. Rows reach the file at every flush
// (ledger.flush): a running proxy's last seconds are not in it yet.
import type { Config } from '../config/index.js'
import { ledgerFile } from '../ledger/file.js'
import { LedgerStore } from '../ledger/store.js'
import { formatReport, parseQuery, REPORT_FORMATS, usageReport, type Report, type ReportFormat } from '../ledger/report.js'
import { usageReportPostgres } from '../ledger/report-postgres.js'
import { EXIT } from '../errors.js'

type Out = { stdout: (s: string) => void; stderr: (s: string) => void }

export interface UsageOptions {
  by?: string
  since?: string
  until?: string
  format?: string
  /** sqlite (this proxy's file) or postgres (the fleet's, ledger.postgres.url) */
  from?: string
}

/** Print the report; the exit code (1: bad option, or no ledger to read). */
export async function usageCommand(config: Config, o: UsageOptions, out: Out, now = Date.now()): Promise<number> {
  const format = o.format ?? 'table'
  if (!(REPORT_FORMATS as readonly string[]).includes(format)) {
    out.stderr(`leaky: --format: expected one of ${REPORT_FORMATS.join(', ')}, got "${format}"\n`)
    return EXIT.FAILED
  }
  const q = parseQuery({ by: o.by, since: o.since, until: o.until }, now)
  if (typeof q === 'string') {
    out.stderr(`leaky: --${q}\n`)
    return EXIT.FAILED
  }
  const from = o.from ?? 'sqlite'
  if (from === 'postgres') {
    const pgc = config.ledger.postgres
    if (pgc === undefined) {
      out.stderr('leaky: --from postgres: this config has no ledger.postgres.url\n')
      return EXIT.FAILED
    }
    let report: Report
    try {
      report = await usageReportPostgres(pgc.url, q)
    } catch (err) {
      out.stderr(`leaky: Postgres (ledger.postgres.url): ${(err as Error).message}\n`)
      return EXIT.FAILED
    }
    out.stdout(formatReport(report, format as ReportFormat))
    return EXIT.OK
  }
  if (from !== 'sqlite') {
    out.stderr(`leaky: --from: expected sqlite or postgres, got "${from}"\n`)
    return EXIT.FAILED
  }
  const file = ledgerFile(config)
  if (file === null) {
    out.stderr('leaky: no usage ledger in this config: set ledger.file or state_file\n')
    return EXIT.FAILED
  }
  let store: LedgerStore
  try {
    store = LedgerStore.open(file, { create: false, readonly: true })
  } catch (err) {
    out.stderr(`leaky: ${(err as Error).message}\n`)
    return EXIT.FAILED
  }
  try {
    out.stdout(formatReport(usageReport(store, q, config.ledger.retention.minutes, now), format as ReportFormat))
  } finally {
    store.close()
  }
  return EXIT.OK
}
