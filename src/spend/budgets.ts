// Budgets in money: a budget is a limit whose unit is money, charged on the same shared bucket table with the same
// all-or-nothing charge, refund and reconcile as token limits. A request is pre-charged the most it can cost (the
// prompt estimate at the highest input price plus the requested maximum output at the highest output price) and
// reconciled to its real cost when it ends, so a budget admits a request only if its worst case fits: it is never
// overshot, except by what the prompt estimate undercounts.
//
// Units. Costs are pico-USD (prices.ts); a budget counts in units of `unitPico` — nano-USD unless the budget is so
// large that its window could not hold it at 1 ns a unit (limit.ts), then micro- or milli-USD. A charge rounds the
// cost up to whole units, its reconcile the same way, so both sides of a pre-charge agree.
import { LeakyError } from '../errors.js'
import type { BudgetConfig, Config } from '../config/schema.js'
import { compileLimit, type CompiledLimit, type LimitDef } from '../limiter/limit.js'
import { MIN_WINDOW_MS } from './calendar.js'
import type { Price } from './prices.js'

/** One `budgets:` entry as the schema validates and normalises it (its name included). */
export type BudgetDef = BudgetConfig

export type OnErrorPolicy = 'open' | 'closed' | 'local'

/** What a cluster budget needs from the redis section. */
export type BudgetRedis = Pick<NonNullable<Config['redis']>, 'on_error' | 'expected_instances'>

export class Budget {
  readonly name: string
  readonly usd: number
  /** the bucket: unit usd, a calendar window or a rolling leaky bucket */
  readonly limit: CompiledLimit
  /** alert thresholds as shares of the budget, ascending */
  readonly alertAt: number[]
  /** "500/month calendar Europe/Berlin" for messages */
  readonly describe: string
  /** scope: cluster — counted in Redis (src/spend/budget-redis.ts), one counter per window */
  readonly cluster: boolean
  /** cluster: what to do when Redis fails */
  readonly onError: OnErrorPolicy
  /** cluster, on_error local: this proxy's share (usd / expected_instances) on the local table */
  readonly share: CompiledLimit | null

  constructor(def: BudgetDef, redis: BudgetRedis | null = null) {
    this.name = def.name
    this.usd = def.usd
    this.alertAt = def.alert_at
    this.cluster = def.scope === 'cluster'
    this.onError = ('on_error' in def ? def.on_error : undefined) ?? redis?.on_error ?? 'local'
    const windowMs = def.window === 'calendar' ? MIN_WINDOW_MS[def.every] : def.period_ms
    // the smallest unit (nano-USD first) at which two budgets' worth of units fit the window at >= 1 ns a unit
    let unitPico = 1000
    while ((def.usd * 1e12 * 2) / unitPico > windowMs * 1e6) unitPico *= 1000
    const amount = Math.round((def.usd * 1e12) / unitPico)
    const ldef: LimitDef = {
      name: def.name, per: def.per, unit: 'usd', amount, period_ms: def.period_ms, burst: amount, unit_pico: unitPico,
      ...(def.window === 'calendar' ? { calendar: { unit: def.every, timezone: def.timezone } } : {}),
    }
    this.limit = compileLimit(ldef, 1)
    const instances = redis?.expected_instances ?? 1
    this.share = this.cluster && this.onError === 'local'
      ? compileLimit({ ...ldef, amount: Math.max(1, Math.floor(amount / instances)), burst: Math.max(1, Math.floor(amount / instances)) }, 1)
      : null
    this.describe = `${formatUsdShort(def.usd)} per ${def.every}${def.window === 'calendar' ? ` (calendar, ${def.timezone})` : ' (rolling)'}`
  }

  /** pico-USD → this budget's units, rounded up (a charge never undercounts). */
  units(pico: number): number {
    return pico <= 0 ? 0 : Math.ceil(pico / this.limit.unitPico)
  }

  /** this budget's units → USD */
  toUsd(units: number): number {
    return (units * this.limit.unitPico) / 1e12
  }
}

export interface BudgetPlan {
  /** by route index: the local budgets the route charges (this proxy's bucket table), in config order */
  byRoute: Budget[][]
  /** by route index: its `scope: cluster` budgets (Redis), in config order */
  clusterByRoute: Budget[][]
  all: Budget[]
}

/** Compile the budgets once per plan. Throws LeakyError LEAKY_CONFIG_INVALID (config edge). */
export function compileBudgets(defs: Record<string, BudgetDef>, routes: Array<{ budgets: string[] }>, redis: BudgetRedis | null = null): BudgetPlan {
  const byName = new Map<string, Budget>()
  for (const [name, def] of Object.entries(defs)) {
    try {
      byName.set(name, new Budget(def, redis))
    } catch (err) {
      throw new LeakyError('LEAKY_CONFIG_INVALID', `budget "${name}": ${(err as Error).message}`)
    }
  }
  const pick = (r: { budgets: string[] }, cluster: boolean) => r.budgets.map((n) => byName.get(n)!).filter((b) => b.cluster === cluster)
  return { byRoute: routes.map((r) => pick(r, false)), clusterByRoute: routes.map((r) => pick(r, true)), all: [...byName.values()] }
}

/**
 * The most a request can cost, pico-USD: every prompt token at the dearest input rate (a cache write costs more
 * than plain input at Anthropic), every requested output token at the dearer of output and reasoning, plus the
 * per-request price.
 */
export function maxCostPico(p: Price, promptTokens: number, totalTokens: number): number {
  const output = Math.max(0, totalTokens - promptTokens)
  return promptTokens * Math.max(p.input, p.cacheWrite) + output * Math.max(p.output, p.reasoning) + p.request
}

function formatUsdShort(usd: number): string {
  return `$${usd}`
}

/** USD with six places (micro-USD), rounded down: what is left is never overstated. */
export function formatMicroUsd(usd: number): string {
  return (Math.floor(usd * 1e6 + 1e-6) / 1e6).toFixed(6)
}
