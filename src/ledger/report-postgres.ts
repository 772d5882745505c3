// A usage report from the fleet's Postgres (`leaky usage --from postgres`): the same query as from the SQLite file
// (report.ts), over every proxy's minute rows. Postgres keeps what was shipped (its retention is the DBA's), so the
// report is always from minute rows.
import pg from 'pg'
import { buildReport, orderBy, SUMS, type Report, type ReportBy, type ReportQuery } from './report.js'

const MINUTE_MS = 60_000

function groupExpr(by: ReportBy): string {
  switch (by) {
    case 'key':
    case 'org':
    case 'model':
    case 'route':
      return by
    case 'status':
      return "status_class::text || 'xx'"
    case 'day':
      return "to_char(to_timestamp(minute * 60) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    case 'month':
      return "to_char(to_timestamp(minute * 60) AT TIME ZONE 'UTC', 'YYYY-MM')"
  }
}

export async function usageReportPostgres(url: string, q: ReportQuery): Promise<Report> {
  const since = Math.floor(q.since / MINUTE_MS) * MINUTE_MS
  const until = Math.ceil(q.until / MINUTE_MS) * MINUTE_MS
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 })
  client.on('error', () => undefined)
  await client.connect()
  try {
    const r = await client.query(
      `SELECT ${groupExpr(q.by)} AS grp, ${SUMS} FROM leaky_usage_minute WHERE minute >= $1 AND minute < $2 GROUP BY grp${orderBy(q.by)}`,
      [since / MINUTE_MS, until / MINUTE_MS],
    )
    return buildReport(q.by, since, until, 'minute', r.rows as Record<string, unknown>[])
  } finally {
    await client.end().catch(() => undefined)
  }
}
