// Bulkheads: `max_inflight` per route and per upstream, counted in the generation's shared target table so the
// bound holds across all worker threads. A request takes a place on its route and on the route's upstream when it
// is about to be forwarded (a cache hit takes none), and gives them back when it is accounted; beyond the bound it
// gets 503 LEAKY_OVERLOADED with Retry-After, so one slow upstream or one busy route cannot take every place of
// server.max_inflight from the others.
//
// The upstream's count of requests in flight is also what the retry budget (Envoy's retry_budget) is measured
// against: retries in flight at most `retry.budget` percent of the upstream's requests in flight, and at least
// `retry.min_retries`, so a failing provider never gets a retry storm.
import type { TargetTable } from './target-table.js'
import { targetTable, overflowTable } from './target-table.js'

/** A route's place counter: its slot in the target table, found once when the plan is compiled. */
export class RouteGate {
  readonly table: TargetTable
  readonly slot: number
  /** 0: no bound (the route is still counted, for /status.json) */
  readonly max: number

  constructor(scope: string, max: number) {
    let table = targetTable()
    let slot = table.slot('#route', scope)
    if (slot < 0) {
      table = overflowTable()
      slot = table.slot('#route', scope)
    }
    this.table = table
    this.slot = slot
    this.max = max
  }
}

export interface UpstreamGate {
  readonly maxInflight: number
  readonly balancer: { readonly table: TargetTable; readonly account: number }
}

/** Take the request's places; false (nothing held) when its route or its upstream is full. */
export function enterBulkheads(route: RouteGate, up: UpstreamGate): boolean {
  if (!route.table.enter(route.slot, route.max)) return false
  const b = up.balancer
  if (!b.table.enter(b.account, up.maxInflight)) {
    route.table.release(route.slot)
    return false
  }
  return true
}

export function leaveBulkheads(route: RouteGate, up: UpstreamGate): void {
  route.table.release(route.slot)
  up.balancer.table.release(up.balancer.account)
}

/**
 * May a request of this upstream be retried now? Retries in flight stay within `percent` of the upstream's
 * requests in flight, or `min` — whichever is more. A refusal is counted.
 */
export function retryAllowed(up: UpstreamGate, percent: number, min: number): boolean {
  const b = up.balancer
  const retrying = b.table.retrying(b.account)
  if (retrying < min || retrying < (b.table.inflight(b.account) * percent) / 100) return true
  b.table.countBudgetDenied(b.account)
  return false
}
