// The second half of a token limit's decision. The limit stage pre-charged the request's estimate; once the
// response has told what it really used, account hands the number here and the buckets it was charged on (this
// proxy's table, and Redis for `scope: cluster`) are corrected by the difference.
import type { RequestState } from '../server/request-state.js'
import { ctx } from '../server/context.js'
import { Status } from './table.js'
import { scaledFor, scopeOf } from './subject.js'

/**
 * The token limits' reconcile, once the response is read: replace the estimate pre-charged on every token bucket with the real usage
 * (a refund when the request used less, an extra charge when it used more), locally and on the cluster backend.
 */
export function reconcile(s: RequestState, actual: number): void {
  const delta = actual - s.costTokens
  if (delta === 0 || !s.charged) return
  const list = s.plan.limits.byRoute[s.route!.index]
  const table = ctx.table!
  const now = table.clock.now()
  for (let i = 0; i < list.length; i++) {
    if (list[i].unit !== 'tokens') continue
    const l = scaledFor(list[i], s)
    const scope = scopeOf(l, s)
    if (scope !== null) table.adjust(l, scope, delta, now)
  }
  if (s.cluster !== null && s.cluster.status === Status.OK) s.clusterBy!.reconcile(s.cluster, delta)
}
