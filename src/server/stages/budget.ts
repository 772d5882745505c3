// The budget half of the limit stage (src/spend/budgets.ts says what a budget is). After the route's limits
// admitted a request, its budgets are charged its most possible cost on the same bucket table, all or nothing; a
// denial refunds the limits (the caller) and answers 429 LEAKY_BUDGET_EXCEEDED with the window's reset. Account
// reconciles the pre-charge to the real cost once the response is priced.
import { Next, type RequestState } from '../request-state.js'
import { replyError } from '../reply.js'
import { ctx } from '../context.js'
import { Charges, chargeAll } from '../../limiter/policy.js'
import { Status } from '../../limiter/table.js'
import { type Budget, formatMicroUsd, maxCostPico } from '../../spend/budgets.js'
import { scopeOf } from './limit.js'
import { budgetLevel } from './budget-alerts.js'

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
 * Replace the pre-charge with the real cost (pico-USD; 0 when nothing was spent; -1 keeps the pre-charge, for usage
 * that could not be read or priced). Runs once: account calls it, and a Redis denial after the budgets admitted.
 */
export function reconcileBudgets(s: RequestState, actualPico: number): void {
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
  const waitS = Math.max(1, Math.ceil(Number(resetNs - now) / 1e9))
  const reset = new Date(Number(resetNs / 1_000_000n)).toISOString()
  const spent = Math.min(l.burst, Math.max(0, Math.ceil(bc.afterNs(i) / l.tNs)))
  const left = b.toUsd(l.burst - spent)
  const cost = b.toUsd(bc.costs[i])
  const headers = [
    'Retry-After', String(waitS),
    'x-budget-name', b.name,
    'x-budget-limit-usd', formatMicroUsd(b.usd),
    'x-budget-remaining-usd', formatMicroUsd(left),
    'x-budget-reset', reset,
  ]
  const why = st === Status.OVER_BURST
    ? `this request may cost up to $${cost.toFixed(6)}, more than the whole budget: lower max_tokens or the prompt`
    : `$${formatMicroUsd(left)} left, this request may cost up to $${cost.toFixed(6)}`
  return replyError(s, 'LEAKY_BUDGET_EXCEEDED', false, headers,
    `budget "${b.name}" exceeded (${b.describe}): ${why}; the window resets at ${reset} (in ${waitS} s)`)
}
