// Bulkheads: `max_inflight` per route and per upstream, counted in the generation's shared target table so the
// bound holds across all worker threads. A request takes a place on its route and on its upstream — the one chosen
// for it: the route's, a split's side, a models route's choice; a fallback counts on the upstream it stands in for —
// when it is about to be forwarded (a cache hit takes none), and gives them back when it is accounted; beyond the bound it
// gets 503 LEAKY_OVERLOADED with Retry-After, so one slow upstream or one busy route cannot take every place of
// server.max_inflight from the others.
//
// The upstream's count of requests in flight is also what the retry budget (Envoy's retry_budget) is measured
// against: retries in flight at most `retry.budget` percent of the upstream's requests in flight, and at least
// `retry.min_retries`, so a failing provider never gets a retry storm.
//
// An upstream with an adaptive concurrency limit (src/traffic/adaptive.ts) bounds its count by that limit too,
// scaled by the request's tier priority (src/traffic/priority.ts); whichever bound is lower refuses.
import type { TargetTable } from './target-table.js'
import { targetTable, overflowTable } from './target-table.js'
import type { RequestState } from '../server/request-state.js'
import { replyError } from '../server/reply.js'
import type { QueueHooks } from './wait-queue.js'

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

const OVERLOADED_RETRY_AFTER = ['retry-after', '1']

/**
 * Take the request's places on its route and its route's upstream. True: taken, go on. False: either refused, and
 * answered 503 LEAKY_OVERLOADED with Retry-After (nothing held), or queued in the upstream's bulkhead queue (it
 * holds its route's place while it waits): `then` runs once it holds its upstream's place too.
 */
export function enterBulkheads(s: RequestState, then: (s: RequestState) => void): boolean {
  const route = s.route!.gate
  if (!route.table.enter(route.slot, route.max)) {
    route.table.countShed(route.slot)
    return shed(s, 'bulkhead full')
  }
  const up = s.upstream!
  s.gateUpstream = up
  if (enterUpstream(s)) return true
  // a full bulkhead may queue; an adaptive limit sheds at once (waiting would only add the latency it steers by)
  if (boundTier < 0 && up.queue !== null && up.queue.push(s, then)) return false
  route.table.release(route.slot)
  const b = up.balancer
  if (boundTier < 0) {
    b.table.countShed(b.account)
    return shed(s, 'bulkhead full')
  }
  b.adaptive!.countShed(boundTier)
  return shed(s, s.tier === '' ? `adaptive limit: ${up.name}` : `adaptive limit: ${up.name}, tier ${s.tier}`)
}

/** The tier index when the adaptive limit set the bound enterUpstream just used, -1 when max_inflight did. */
let boundTier = -1

/** Take the request's place on its upstream if one is free now, under the lower of its two bounds. */
function enterUpstream(s: RequestState): boolean {
  const up = s.gateUpstream!
  const b = up.balancer
  const a = b.adaptive
  let max = up.maxInflight
  boundTier = -1
  if (a !== null) {
    const p = s.plan.priorities.of(s.tier)
    const bound = a.bound(p.level)
    if (max === 0 || bound < max) {
      max = bound
      boundTier = p.index
    }
  }
  // an adaptive bound of 0 (the lowest priority's share of a tiny limit) refuses: 0 is not "no bound" here
  if ((boundTier >= 0 && max === 0) || !b.table.enter(b.account, max)) return false
  s.gated = true
  return true
}

function shed(s: RequestState, detail: string): false {
  s.errorDetail = detail
  replyError(s, 'LEAKY_OVERLOADED', false, OVERLOADED_RETRY_AFTER)
  return false
}

/** What an upstream's bulkhead queue does with the requests in it (src/traffic/wait-queue.ts). */
export const QUEUE_HOOKS: QueueHooks = {
  enter: enterUpstream,
  expired(s: RequestState): void {
    const up = s.gateUpstream!
    s.route!.gate.table.release(s.route!.gate.slot)
    up.balancer.table.countShed(up.balancer.account)
    shed(s, `bulkhead queue timeout: ${up.name}`)
  },
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
