// GET /admin/usage?by=…&since=…&until=… (viewer): the ledger's report (src/ledger/report.ts) as JSON. The pending
// rows are written first, so the answer includes everything the workers have handed over (up to their last second).
import type { ErrorCode } from '../errors.js'
import type { LedgerWriter } from '../ledger/writer.js'
import { parseQuery, usageReport, type Report } from '../ledger/report.js'

export type UsageAnswer = { ok: true; report: Report } | { ok: false; code: ErrorCode; message: string }

export function usageAnswer(writer: LedgerWriter, minuteRetentionMs: number, params: URLSearchParams, now = Date.now()): UsageAnswer {
  for (const name of params.keys()) {
    if (name !== 'by' && name !== 'since' && name !== 'until') return { ok: false, code: 'LEAKY_BAD_REQUEST', message: `unknown parameter "${name}" (by, since, until)` }
  }
  const q = parseQuery({ by: params.get('by'), since: params.get('since'), until: params.get('until') }, now)
  if (typeof q === 'string') return { ok: false, code: 'LEAKY_BAD_REQUEST', message: q }
  const store = writer.store
  if (store === null) return { ok: false, code: 'LEAKY_LEDGER_DISABLED', message: `usage ledger is off: ${writer.disabled ?? 'not open'}` }
  writer.flush()
  return { ok: true, report: usageReport(store, q, minuteRetentionMs, now) }
}
