// The second half of a budget's decision (src/server/stages/budget.ts charges the most a request can cost): the
// real cost, once the response is priced, replaces the pre-charge — on this proxy's table, or on the Redis counters
// of `scope: cluster` budgets — and the level it leaves feeds the budget alerts.
import type { RequestState } from '../server/request-state.js'
import { ctx } from '../server/context.js'
import { Status } from '../limiter/table.js'
import { scopeOf } from '../limiter/subject.js'
import type { RedisLimiter } from '../limiter/redis.js'
import type { Budget } from './budgets.js'
import { BUDGET_ADJUST_LUA } from './budget-redis.js'
import { budgetLevel } from './budget-level.js'

/** What a request charged on its `scope: cluster` budgets, and where (one object per such request). */
export class ClusterBudgetCharge {
  /** redis: the counters; local: this proxy's shares (on_error local); open: nothing was charged */
  via: 'redis' | 'local' | 'open' = 'open'
  readonly budgets: Budget[] = []
  readonly scopes: string[] = []
  readonly keys: string[] = []
  readonly units: number[] = []
  readonly ttls: number[] = []
  redis: RedisLimiter | null = null
}

/**
 * Replace the pre-charge with the real cost (pico-USD; 0 when nothing was spent; -1 keeps the pre-charge, for usage
 * that could not be read or priced). Runs once: account calls it, or the limit stage when Redis denied after the budgets admitted.
 */
export function reconcileBudgets(s: RequestState, actualPico: number): void {
  if (s.clusterBudget !== null) reconcileCluster(s, s.clusterBudget, actualPico)
  if (!s.budgetCharged) return
  s.budgetCharged = false
  const list = s.plan.budgets.byRoute[s.route!.index]
  const table = ctx.table!
  const now = table.clock.now()
  for (let i = 0; i < list.length; i++) {
    const b = list[i]
    const scope = scopeOf(b.limit, s)
    if (scope === null) continue
    const delta = actualPico < 0 ? 0 : b.units(actualPico) - b.units(s.budgetPico)
    if (table.adjust(b.limit, scope, delta, now) === Status.OK && b.alertAt.length > 0) {
      budgetLevel(b, scope, table.afterNs / b.limit.tNs, now)
    }
  }
}

function reconcileCluster(s: RequestState, c: ClusterBudgetCharge, actualPico: number): void {
  s.clusterBudget = null
  if (actualPico < 0 || c.via === 'open') return
  const n = c.budgets.length
  if (c.via === 'local') {
    const table = ctx.table!
    const now = table.clock.now()
    for (let i = 0; i < n; i++) {
      const share = c.budgets[i].share
      if (share !== null) table.adjust(share, c.scopes[i], c.budgets[i].units(actualPico) - c.units[i], now)
    }
    return
  }
  const args: Array<string | number> = [...c.keys]
  let any = false
  for (let i = 0; i < n; i++) {
    const delta = c.budgets[i].units(actualPico) - c.units[i]
    if (delta !== 0 || c.budgets[i].alertAt.length > 0) any = true
    args.push(delta, c.ttls[i])
  }
  if (!any) return
  const redis = c.redis!
  // a lost reconcile leaves the pre-charge counted (the safe side); the failure is counted with the Redis errors.
  // The levels it answers feed the alerts (one call even when nothing changes: the level is what alerts need).
  redis.script(BUDGET_ADJUST_LUA, n, args).then((r) => {
    const levels = r as number[]
    const now = ctx.table!.clock.now()
    for (let i = 0; i < n; i++) if (c.budgets[i].alertAt.length > 0) budgetLevel(c.budgets[i], c.scopes[i], Number(levels[i]), now)
  }, (e: Error) => redis.failed(e))
}
