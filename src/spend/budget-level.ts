// Budget alerts, worker side: after a reconcile, a budget whose level (real spend plus the pre-charges of requests
// still in flight) has reached one of its alert_at shares reports it to the generation's main thread, which logs
// one line and counts leaky_budget_alerts_total once per (budget, subject, threshold, window) for the whole proxy
// (src/spend/budget-alerts.ts). Each worker remembers what it already sent for the current window, so a budget past
// a threshold costs one Map lookup per request, and the main thread sees at most one message per worker.
import { parentPort } from 'node:worker_threads'
import type { Budget } from './budgets.js'
import type { BudgetAlertMessage } from './budget-alerts.js'

/** (budget name, subject) → [window start, highest threshold index sent in it] */
const sent = new Map<string, { window: bigint; index: number }>()
const SENT_CAP = 100_000

/** `level`: units in the budget's bucket after the reconcile; `now` on the table's clock. */
export function budgetLevel(b: Budget, scope: string, level: number, now: bigint): void {
  const l = b.limit
  let index = -1
  for (let i = 0; i < b.alertAt.length; i++) if (level >= b.alertAt[i] * l.burst - 1e-9) index = i
  if (index < 0) return
  const window = windowStart(b, now)
  const k = b.name + '\0' + scope
  const prev = sent.get(k)
  if (prev !== undefined && prev.window === window && prev.index >= index) return
  const from = prev !== undefined && prev.window === window ? prev.index + 1 : 0
  if (prev !== undefined || sent.size < SENT_CAP) sent.set(k, { window, index })
  for (let i = from; i <= index; i++) {
    const m: BudgetAlertMessage = {
      type: 'budget-alert', budget: b.name, per: l.per, subject: scope, threshold: b.alertAt[i],
      window_start_ms: Number(window / 1_000_000n), spent_usd: b.toUsd(Math.ceil(level)), limit_usd: b.usd,
    }
    parentPort?.postMessage(m)
  }
}

// calendar: the window's start; rolling: the period the instant falls in (so an alert can repeat once a period)
function windowStart(b: Budget, now: bigint): bigint {
  const l = b.limit
  if (l.calendar !== null) return l.calendar.startNs(now)
  const p = BigInt(l.periodMs) * 1_000_000n
  return (now / p) * p
}
