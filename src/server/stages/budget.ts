// The budget half of the limit stage (src/spend/budgets.ts says what a budget is). After the route's limits
// admitted a request, its budgets are charged its most possible cost on the same bucket table, all or nothing; a
// denial refunds the limits (the caller) and answers 429 LEAKY_BUDGET_EXCEEDED with the window's reset. The
// pre-charge is reconciled to the real cost once the response is priced (src/spend/reconcile.ts).
import { Next, type RequestState } from '../request-state.js'
import { replyError } from '../reply.js'
import { ctx } from '../context.js'
import { Charges, chargeAll } from '../../limiter/policy.js'
import { Status } from '../../limiter/table.js'
import { type Budget, formatMicroUsd, maxCostPico } from '../../spend/budgets.js'
import { scopeOf } from '../../limiter/subject.js'
import { ClusterBudgetCharge } from '../../spend/reconcile.js'
import { BUDGET_CHARGE_LUA, budgetKey, budgetTtlMs } from '../../spend/budget-redis.js'

// one per thread: a budget decision is made and rendered synchronously
const bc = new Charges()
const picked: Budget[] = []

/** Charge the route's budgets at `now` (the table's clock). CONTINUE when admitted or none apply, else REPLIED. */
export function chargeBudgets(s: RequestState, now: bigint): Next {
  const list = s.plan.budgets.byRoute[s.route!.index]
  // only LLM calls cost money: a GET of /v1/models or a non-LLM path passes a budgeted route untouched
  if (list.length === 0 || s.costTokens <= 0) return Next.CONTINUE
  const price = s.plan.prices.lookup(s.upstream!.provider, s.model)
  if (price === null) {
    s.limitDenied = list[0].name
    return replyError(s, 'LEAKY_BUDGET_NO_PRICE', false, null,
      `model "${s.model}" has no price (prices: in the config, or config/prices.yaml), so budget "${list[0].name}" cannot be checked`)
  }
  const pico = maxCostPico(price, s.promptTokens, s.costTokens)
  bc.clear()
  picked.length = 0
  for (let i = 0; i < list.length; i++) {
    const b = list[i]
    const scope = scopeOf(b.limit, s)
    if (scope === null) continue
    bc.add(b.limit, scope, b.units(pico))
    picked.push(b)
  }
  if (bc.length === 0) return Next.CONTINUE
  const table = ctx.table!
  const st = chargeAll(table, bc, now)
  if (st === Status.OK) {
    s.budgetPico = pico
    s.budgetCharged = true
    return Next.CONTINUE
  }
  return deny(s, st, now)
}

/**
 * Charge the route's cluster budgets in one Redis script call: true when admitted (or none apply), false when
 * refused (replied), or a promise of that. Redis down or failing: each budget's on_error, as for cluster limits —
 * closed refuses with 503, local counts on this proxy's share, open admits uncounted.
 */
export function chargeClusterBudgets(s: RequestState): boolean | Promise<boolean> {
  const list = s.plan.budgets.clusterByRoute[s.route!.index]
  if (s.costTokens <= 0) return true
  const price = s.plan.prices.lookup(s.upstream!.provider, s.model)
  if (price === null) {
    s.limitDenied = list[0].name
    replyError(s, 'LEAKY_BUDGET_NO_PRICE', false, null,
      `model "${s.model}" has no price (prices: in the config, or config/prices.yaml), so budget "${list[0].name}" cannot be checked`)
    return false
  }
  const pico = maxCostPico(price, s.promptTokens, s.costTokens)
  const table = ctx.table!
  const now = table.clock.now()
  const redis = ctx.cluster?.redis ?? null
  const c = new ClusterBudgetCharge()
  c.redis = redis
  for (let i = 0; i < list.length; i++) {
    const b = list[i]
    const scope = scopeOf(b.limit, s)
    if (scope === null) continue
    c.budgets.push(b)
    c.scopes.push(scope)
    c.keys.push(redis === null ? '' : budgetKey(redis.keyPrefix, b, scope, now))
    c.units.push(b.units(pico))
    c.ttls.push(budgetTtlMs(b, now))
  }
  const n = c.budgets.length
  if (n === 0) return true
  s.budgetPico = pico
  if (redis === null || !redis.up) return without(s, c, now)
  const args: Array<string | number> = [...c.keys]
  for (let i = 0; i < n; i++) args.push(c.budgets[i].limit.burst, c.units[i], c.ttls[i])
  return redis.script(BUDGET_CHARGE_LUA, n, args).then((r) => {
    const out = r as number[]
    const st = Number(out[0])
    if (st === 0) {
      c.via = 'redis'
      s.clusterBudget = c
      return true
    }
    const d = Number(out[1]) - 1
    clusterDeny(s, c.budgets[d], st === 2 ? Status.OVER_BURST : Status.DENIED, Number(out[2 + d]), c.units[d], table.clock.now())
    return false
  }, (e: Error) => {
    redis.failed(e)
    return without(s, c, table.clock.now())
  })
}

// Redis unavailable: closed wins over local, local over open (as decideWithout does for limits)
function without(s: RequestState, c: ClusterBudgetCharge, now: bigint): boolean {
  const n = c.budgets.length
  for (let i = 0; i < n; i++) {
    const b = c.budgets[i]
    if (b.onError !== 'closed') continue
    s.limitDenied = b.name
    replyError(s, 'LEAKY_REDIS_UNAVAILABLE', false, ['Retry-After', '1'],
      `cluster budget "${b.name}" cannot be checked: Redis is unavailable and its on_error is closed; try again later`)
    return false
  }
  const table = ctx.table!
  const sub = new Charges()
  const idx: number[] = []
  for (let i = 0; i < n; i++) {
    const share = c.budgets[i].share
    if (share === null) continue
    sub.add(share, c.scopes[i], c.units[i])
    idx.push(i)
  }
  if (sub.length > 0) {
    const st = chargeAll(table, sub, now)
    if (st !== Status.OK) {
      if (st !== Status.DENIED && st !== Status.OVER_BURST) {
        replyError(s, 'LEAKY_TABLE_FULL', false, ['Retry-After', '1'], 'rate-limit table full or slot busy; budget cannot be checked; try again')
        return false
      }
      const d = idx[sub.decider]
      const share = c.budgets[d].share!
      clusterDeny(s, c.budgets[d], st, Math.ceil(sub.afterNs(sub.decider) / share.tNs), c.units[d], now, share.burst)
      return false
    }
    c.via = 'local'
  }
  s.clusterBudget = c
  return true
}

function clusterDeny(s: RequestState, b: Budget, st: Status, level: number, units: number, now: bigint, burst = b.limit.burst): Next {
  s.limitDenied = b.name
  return budgetReply(s, b, st, b.limit.calendar!.endNs(now), now, b.toUsd(Math.max(0, burst - level)), b.toUsd(units), b.toUsd(burst))
}

function deny(s: RequestState, st: Status, now: bigint): Next {
  const i = bc.decider
  const b = picked[i]
  const l = b.limit
  s.limitDenied = b.name
  if (st !== Status.DENIED && st !== Status.OVER_BURST) {
    return replyError(s, 'LEAKY_TABLE_FULL', false, ['Retry-After', '1'], 'rate-limit table full or slot busy; budget cannot be checked; try again')
  }
  // calendar: the window's end; rolling: when the bucket has room for this request again
  const resetNs = l.calendar !== null ? l.calendar.endNs(now) : now + BigInt(Math.max(0, st === Status.DENIED ? bc.retryNs : l.tauNs))
  const spent = Math.min(l.burst, Math.max(0, Math.ceil(bc.afterNs(i) / l.tNs)))
  return budgetReply(s, b, st, resetNs, now, b.toUsd(l.burst - spent), b.toUsd(bc.costs[i]), b.usd)
}

// The 429: Retry-After and x-budget-* headers, and a message saying what is left, what the request may cost and
// when the window resets. `limitUsd`: the amount the decision was made against (a proxy's share under on_error local).
function budgetReply(s: RequestState, b: Budget, st: Status, resetNs: bigint, now: bigint, left: number, cost: number, limitUsd: number): Next {
  const waitS = Math.max(1, Math.ceil(Number(resetNs - now) / 1e9))
  const reset = new Date(Number(resetNs / 1_000_000n)).toISOString()
  const headers = [
    'Retry-After', String(waitS),
    'x-budget-name', b.name,
    'x-budget-limit-usd', formatMicroUsd(limitUsd),
    'x-budget-remaining-usd', formatMicroUsd(left),
    'x-budget-reset', reset,
  ]
  const why = st === Status.OVER_BURST
    ? `this request may cost up to $${cost.toFixed(6)}, more than the whole budget: lower max_tokens or the prompt`
    : `$${formatMicroUsd(left)} left, this request may cost up to $${cost.toFixed(6)}`
  return replyError(s, 'LEAKY_BUDGET_EXCEEDED', false, headers,
    `budget "${b.name}" exceeded (${b.describe}): ${why}; the window resets at ${reset} (in ${waitS} s)`)
}
