// The status page's spend panel (`spend` in /status.json): today's and this month's spend by org and by model, read
// from the usage ledger, and every budget with what its subjects spent, its amount and when its window resets.
// Ledger figures are as of the writer's last flush (ledger.flush); they are read at most once per CACHE_MS, since a
// page polls status.json every second.
import type { LedgerWriter } from '../ledger/writer.js'
import { usageReport, type ReportBy, type ReportRow } from '../ledger/report.js'
import type { BudgetAlerts, BudgetStatus } from './budget-alerts.js'

const CACHE_MS = 5_000
/** rows per table: the largest spenders */
const TOP = 10

export interface SpendRow {
  group: string
  requests: number
  tokens: number
  cost_usd: string
}

export interface SpendPeriod {
  /** start of the period (UTC), ISO */
  since: string
  total_usd: string
  requests: number
  by_org: SpendRow[]
  by_model: SpendRow[]
}

export interface SpendPanel {
  /** false: no ledger (not configured or not opened); today and month are null then */
  ledger: boolean
  today: SpendPeriod | null
  month: SpendPeriod | null
  budgets: BudgetStatus[]
}

export class SpendPanelSource {
  readonly #ledger: LedgerWriter
  readonly #budgets: BudgetAlerts
  readonly #minuteRetention: () => number
  #cached: { at: number; ledger: Pick<SpendPanel, 'today' | 'month'> } | null = null

  constructor(ledger: LedgerWriter, budgets: BudgetAlerts, minuteRetentionMs: () => number) {
    this.#ledger = ledger
    this.#budgets = budgets
    this.#minuteRetention = minuteRetentionMs
  }

  get(now = Date.now()): SpendPanel {
    const store = this.#ledger.store
    if (store === null) return { ledger: false, today: null, month: null, budgets: this.#budgets.snapshot() }
    if (this.#cached === null || now - this.#cached.at >= CACHE_MS) {
      const d = new Date(now)
      const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())
      const month = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)
      this.#cached = { at: now, ledger: { today: this.#period(day, now), month: this.#period(month, now) } }
    }
    return { ledger: true, ...this.#cached.ledger, budgets: this.#budgets.snapshot() }
  }

  #period(since: number, now: number): SpendPeriod | null {
    const store = this.#ledger.store
    if (store === null) return null
    const report = (by: ReportBy) => usageReport(store, { by, since, until: now + 60_000 }, this.#minuteRetention(), now)
    const org = report('org')
    const model = report('model')
    return {
      since: new Date(since).toISOString(),
      total_usd: org.total.cost_usd,
      requests: org.total.requests,
      by_org: org.rows.slice(0, TOP).map(row),
      by_model: model.rows.slice(0, TOP).map(row),
    }
  }
}

function row(r: ReportRow): SpendRow {
  return { group: r.group, requests: r.requests, tokens: r.tokens_total, cost_usd: r.cost_usd }
}
