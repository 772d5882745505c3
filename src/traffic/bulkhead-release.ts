// Giving back a request's bulkhead places (src/traffic/bulkhead.ts takes them). Its own module because account, at
// the end of the line, calls it: bulkhead.ts answers refused requests through the reply stage, and account must not
// reach back to that.
import type { RequestState } from '../server/request-state.js'

/**
 * Give back the request's places and its count among the upstream's retries (account, once per request), or take
 * it out of the queue it waits in.
 */
export function leaveBulkheads(s: RequestState): void {
  const up = s.gateUpstream
  if (up === null) return
  if (s.retrying) up.balancer.table.stopRetrying(up.balancer.account)
  const route = s.route!.gate
  if (s.gated) {
    route.table.release(route.slot)
    up.balancer.table.release(up.balancer.account)
  } else if (up.queue !== null && up.queue.length > 0 && up.queue.remove(s)) {
    route.table.release(route.slot)
  }
}
