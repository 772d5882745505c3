// Budget alerts, main-thread side: the workers report a budget past an alert_at share (src/server/stages/
// budget-alerts.ts); here each (budget, subject, threshold, window) is logged once and counted once in
// leaky_budget_alerts_total{budget,threshold}, whichever workers reported it. Also the budget gauges: the limit and
// the current window's reset time of every budget, and the spend of every subject the config can name.
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Logger } from 'pino'
import type { Config } from '../config/index.js'
import type { CompiledLimit } from '../limiter/limit.js'
import { Budget } from './budgets.js'

export interface BudgetAlertMessage {
  type: 'budget-alert'
  budget: string
  per: string
  subject: string
  threshold: number
  window_start_ms: number
  spent_usd: number
  limit_usd: number
}

/** The part of BucketTable the gauges read. */
export interface PeekTable {
  peek(limit: CompiledLimit, scope: string, now: bigint): number
  readonly afterNs: number
}

/** windows remembered for de-duplication; old windows are dropped first */
const SEEN_CAP = 100_000

export function thresholdLabel(t: number): string {
  return `${Math.round(t * 10000) / 100}%`
}

export interface BudgetStatus {
  budget: string
  per: string
  limit_usd: number
  /** end of the current calendar window (ISO); null for a rolling budget */
  resets_at: string | null
  /** a cluster budget's spend is its Redis key: not listed here */
  cluster: boolean
  spent: Array<{ subject: string; usd: number }>
}

export class BudgetAlerts {
  readonly #seen = new Set<string>()
  readonly #logger: Logger
  readonly #counter: Counter<'budget' | 'threshold'>

  readonly #notify: (m: BudgetAlertMessage, threshold: string) => void
  readonly #compiled: () => Budget[]
  readonly #config: () => Config
  readonly #table: () => { t: PeekTable; now: bigint } | null

  /** `notify`: called once per alert, after its log line (webhooks) */
  constructor(registry: Registry, logger: Logger, config: () => Config, table: () => { t: PeekTable; now: bigint } | null,
    notify: (m: BudgetAlertMessage, threshold: string) => void = () => {}) {
    this.#logger = logger
    this.#notify = notify
    this.#counter = new Counter({
      name: 'leaky_budget_alerts_total', help: 'Budget alert_at thresholds crossed, once per budget, subject, threshold and window.',
      labelNames: ['budget', 'threshold'], registers: [registry],
    })
    let budgets: { config: Config; list: Budget[] } | null = null
    const compiled = (): Budget[] => {
      const c = config()
      if (budgets === null || budgets.config !== c) {
        budgets = { config: c, list: Object.values(c.budgets).map((d) => new Budget(d, c.redis ?? null)) }
      }
      return budgets.list
    }
    new Gauge({
      name: 'leaky_budget_limit_usd', help: 'A budget\'s amount in USD per window.', labelNames: ['budget'], registers: [registry],
      collect(this: Gauge<'budget'>) {
        this.reset()
        for (const b of compiled()) this.set({ budget: b.name }, b.usd)
      },
    })
    new Gauge({
      name: 'leaky_budget_reset_timestamp_seconds', help: 'When the current window of a calendar budget ends (Unix seconds).',
      labelNames: ['budget'], registers: [registry],
      collect(this: Gauge<'budget'>) {
        this.reset()
        const tt = table()
        const now = tt === null ? BigInt(Date.now()) * 1_000_000n : tt.now
        for (const b of compiled()) {
          if (b.limit.calendar !== null) this.set({ budget: b.name }, Number(b.limit.calendar.endNs(now) / 1_000_000n) / 1000)
        }
      },
    })
    this.#compiled = compiled
    this.#config = config
    this.#table = table
    new Gauge({
      name: 'leaky_budget_spent_usd', help: 'Spend counted on a local budget in its current window (USD; in-flight requests at their most possible cost). Subjects the config names: global, routes, upstreams, tiers, orgs and config keys.',
      labelNames: ['budget', 'subject'], registers: [registry],
      collect(this: Gauge<'budget' | 'subject'>) {
        this.reset()
        const tt = table()
        if (tt === null) return
        const c = config()
        for (const b of compiled()) {
          // a cluster budget's spend is in Redis, not in this proxy's table
          if (b.cluster) continue
          for (const subject of subjects(c, b.limit.per)) {
            if (tt.t.peek(b.limit, subject, tt.now) !== 0) continue
            this.set({ budget: b.name, subject }, b.toUsd(Math.ceil(tt.t.afterNs / b.limit.tNs)))
          }
        }
      },
    })
  }

  /**
   * Every budget with its amount, window end and, for local budgets, the spend of each subject the config names (the
   * status page's spend panel; the same numbers as the leaky_budget_* gauges).
   */
  snapshot(): BudgetStatus[] {
    const tt = this.#table()
    const now = tt === null ? BigInt(Date.now()) * 1_000_000n : tt.now
    const c = this.#config()
    const out: BudgetStatus[] = []
    for (const b of this.#compiled()) {
      const resets = b.limit.calendar === null ? null : new Date(Number(b.limit.calendar.endNs(now) / 1_000_000n)).toISOString()
      const spent: Array<{ subject: string; usd: number }> = []
      if (!b.cluster && tt !== null) {
        for (const subject of subjects(c, b.limit.per)) {
          if (tt.t.peek(b.limit, subject, tt.now) !== 0) continue
          spent.push({ subject, usd: b.toUsd(Math.ceil(tt.t.afterNs / b.limit.tNs)) })
        }
      }
      out.push({ budget: b.name, per: b.limit.per, limit_usd: b.usd, resets_at: resets, cluster: b.cluster, spent })
    }
    return out
  }

  take(m: BudgetAlertMessage): void {
    const k = `${m.budget}\0${m.subject}\0${m.threshold}\0${m.window_start_ms}`
    if (this.#seen.has(k)) return
    if (this.#seen.size >= SEEN_CAP) this.#seen.delete(this.#seen.values().next().value as string)
    this.#seen.add(k)
    const threshold = thresholdLabel(m.threshold)
    this.#counter.inc({ budget: m.budget, threshold })
    this.#logger.warn({
      msg: 'budget alert', budget: m.budget, per: m.per, subject: m.subject, threshold, spent_usd: round6(m.spent_usd),
      limit_usd: m.limit_usd, window_start: new Date(m.window_start_ms).toISOString(),
    })
    this.#notify(m, threshold)
  }
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6
}

// the subjects whose spend the gauge can name without a per-request label: capped, keys only from the config file
function subjects(c: Config, per: string): string[] {
  switch (per) {
    case 'global':
      return ['']
    case 'upstream':
      return Object.keys(c.upstreams)
    case 'route':
      return c.routes.map((r) => (r.host === undefined ? '' : r.host.toLowerCase()) + r.path)
    case 'org':
      return [...new Set(c.keys.map((k) => k.org).filter((o): o is string => o !== undefined))].slice(0, 1000)
    case 'tier':
      return Object.keys(c.tiers)
    case 'key':
      return c.keys.slice(0, 1000).map((k) => k.id)
    default:
      return []
  }
}
