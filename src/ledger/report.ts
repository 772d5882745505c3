// Usage reports from the ledger (`leaky usage`, GET /admin/usage): the sums of a time range grouped by one
// dimension. A range that starts within the minute rows' retention is summed from the minute rows (exact to the
// minute); an older one from the day rows, its ends widened to whole UTC days — the answer says which
// (`granularity`) and the range it really covers.
import { parseDuration } from '../config/units.js'
import type { LedgerStore } from './store.js'

export const REPORT_BY = ['key', 'org', 'model', 'route', 'status', 'day', 'month'] as const
export type ReportBy = (typeof REPORT_BY)[number]
export const REPORT_FORMATS = ['table', 'csv', 'json'] as const
export type ReportFormat = (typeof REPORT_FORMATS)[number]

const MINUTE_MS = 60_000
const DAY_MS = 86_400_000

export interface ReportQuery {
  by: ReportBy
  /** ms since the epoch, inclusive */
  since: number
  /** ms since the epoch, exclusive */
  until: number
}

export interface ReportRow {
  /** the group's value: a key id, org, model, route path, status class ("2xx"), day (YYYY-MM-DD) or month (YYYY-MM); "" = none */
  group: string
  requests: number
  tokens_prompt: number
  tokens_completion: number
  tokens_cached: number
  tokens_thoughts: number
  tokens_total: number
  /** USD, six decimals, as the access lines show it */
  cost_usd: string
  /** requests with usage whose model has no price: their cost is not in cost_usd */
  unpriced: number
}

export interface Report {
  by: ReportBy
  since: string
  until: string
  granularity: 'minute' | 'day'
  rows: ReportRow[]
  total: Omit<ReportRow, 'group'>
}

/**
 * A time bound: a duration back from `now` ("7d", "90m"), a date ("2026-12-01", UTC midnight) or an ISO date-time.
 * Null when it is none of these.
 */
export function parseTime(v: string, now: number): number | null {
  const d = parseDuration(v)
  if (d.ok) return now - d.value
  if (/^\d{4}-\d{2}(-\d{2})?$/.test(v)) {
    const t = Date.parse(v.length === 7 ? `${v}-01T00:00:00Z` : `${v}T00:00:00Z`)
    return Number.isNaN(t) ? null : t
  }
  if (/^\d{4}-\d{2}-\d{2}T/.test(v)) {
    const t = Date.parse(v)
    return Number.isNaN(t) ? null : t
  }
  return null
}

/** A query from raw strings (CLI flags, URL parameters); a string is the reason when one is wrong. */
export function parseQuery(raw: { by?: string | null; since?: string | null; until?: string | null }, now: number): ReportQuery | string {
  const by = raw.by ?? 'key'
  if (!(REPORT_BY as readonly string[]).includes(by)) return `by: expected one of ${REPORT_BY.join(', ')}, got "${by}"`
  const since = parseTime(raw.since ?? '7d', now)
  if (since === null) return `since: expected a duration back from now (7d, 12h), a date (2026-12-01) or an ISO date-time, got "${raw.since}"`
  const until = raw.until == null ? now : parseTime(raw.until, now)
  if (until === null) return `until: expected a duration back from now (1d), a date (2026-12-01) or an ISO date-time, got "${raw.until}"`
  if (until <= since) return `until (${new Date(until).toISOString()}) must be after since (${new Date(since).toISOString()})`
  return { by: by as ReportBy, since, until }
}

export const SUMS = `sum(requests) AS requests, sum(tokens_prompt) AS tokens_prompt, sum(tokens_completion) AS tokens_completion,
  sum(tokens_cached) AS tokens_cached, sum(tokens_thoughts) AS tokens_thoughts, sum(tokens_total) AS tokens_total,
  sum(cost_micro) AS cost_micro, sum(unpriced) AS unpriced`

/** The grouping expression per dimension: written here, never taken from input. */
function groupExpr(by: ReportBy, seconds: string): string {
  switch (by) {
    case 'key':
    case 'org':
    case 'model':
    case 'route':
      return by
    case 'status':
      return "status_class || 'xx'"
    case 'day':
      return `strftime('%Y-%m-%d', ${seconds}, 'unixepoch')`
    case 'month':
      return `strftime('%Y-%m', ${seconds}, 'unixepoch')`
  }
}

/** Sum the ledger for `q`; `minuteRetentionMs` says how far back minute rows are kept. */
export function usageReport(store: LedgerStore, q: ReportQuery, minuteRetentionMs: number, now = Date.now()): Report {
  const minutes = q.since >= now - minuteRetentionMs
  let sql: string
  let params: number[]
  let since: number
  let until: number
  if (minutes) {
    since = Math.floor(q.since / MINUTE_MS) * MINUTE_MS
    until = Math.ceil(q.until / MINUTE_MS) * MINUTE_MS
    sql = `SELECT ${groupExpr(q.by, 'minute * 60')} AS grp, ${SUMS} FROM usage_minute WHERE minute >= ? AND minute < ? GROUP BY grp`
    params = [since / MINUTE_MS, until / MINUTE_MS]
  } else {
    since = Math.floor(q.since / DAY_MS) * DAY_MS
    until = Math.ceil(q.until / DAY_MS) * DAY_MS
    sql = `SELECT ${groupExpr(q.by, 'day * 86400')} AS grp, ${SUMS} FROM usage_day WHERE day >= ? AND day < ? GROUP BY grp`
    params = [since / DAY_MS, until / DAY_MS]
  }
  sql += orderBy(q.by)
  return buildReport(q.by, since, until, minutes ? 'minute' : 'day', store.all(sql, params))
}

/** Days, months and status classes in order; the rest largest cost first. */
export function orderBy(by: ReportBy): string {
  return by === 'day' || by === 'month' || by === 'status' ? ' ORDER BY grp' : ' ORDER BY cost_micro DESC, requests DESC, grp'
}

/** The report from grouped rows (`grp` and the sums; numbers may come as strings from Postgres). */
export function buildReport(by: ReportBy, since: number, until: number, granularity: 'minute' | 'day', raw: Record<string, unknown>[]): Report {
  const total = { requests: 0, tokens_prompt: 0, tokens_completion: 0, tokens_cached: 0, tokens_thoughts: 0, tokens_total: 0, cost_micro: 0, unpriced: 0 }
  const rows: ReportRow[] = raw.map((r) => {
    for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += Number(r[k])
    return {
      group: String(r.grp),
      requests: Number(r.requests),
      tokens_prompt: Number(r.tokens_prompt),
      tokens_completion: Number(r.tokens_completion),
      tokens_cached: Number(r.tokens_cached),
      tokens_thoughts: Number(r.tokens_thoughts),
      tokens_total: Number(r.tokens_total),
      cost_usd: microUsd(Number(r.cost_micro)),
      unpriced: Number(r.unpriced),
    }
  })
  const { cost_micro, ...sums } = total
  return {
    by,
    since: new Date(since).toISOString(),
    until: new Date(until).toISOString(),
    granularity,
    rows,
    total: { ...sums, cost_usd: microUsd(cost_micro) },
  }
}

/** micro-USD → "12.345678" */
export function microUsd(micro: number): string {
  const whole = Math.floor(micro / 1e6)
  return `${whole}.${String(micro - whole * 1e6).padStart(6, '0')}`
}

const COLUMNS = ['requests', 'tokens_prompt', 'tokens_completion', 'tokens_cached', 'tokens_thoughts', 'tokens_total', 'cost_usd', 'unpriced'] as const

/** The report as text: an aligned table (with a total line), CSV (RFC 4180 quoting), or JSON. */
export function formatReport(r: Report, format: ReportFormat): string {
  if (format === 'json') return `${JSON.stringify(r, null, 2)}\n`
  const header = [r.by, ...COLUMNS]
  const lines = r.rows.map((row) => [row.group, ...COLUMNS.map((c) => String(row[c]))])
  if (format === 'csv') return [header, ...lines].map((l) => l.map(csvField).join(',')).join('\r\n') + '\r\n'
  const all = [header, ...lines, ['total', ...COLUMNS.map((c) => String(r.total[c]))]]
  const width = header.map((_, i) => Math.max(...all.map((l) => (i === 0 && l[0] === '' ? 6 : l[i].length))))
  const show = (l: string[]) => l.map((v, i) => (i === 0 ? (v === '' ? '(none)' : v).padEnd(width[i]) : v.padStart(width[i]))).join('  ').trimEnd()
  return [
    `usage by ${r.by}, ${r.since} to ${r.until} (${r.granularity} rows)`,
    show(header),
    ...lines.map(show),
    show(all[all.length - 1]),
  ].join('\n') + '\n'
}

function csvField(v: string): string {
  // a model name is the client's text: one that starts like a formula stays text in a spreadsheet
  if (/^[=+\-@\t\r]/.test(v)) v = `'${v}`
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v
}
