// Whose bucket a limit charges for one request: the subject its `per:` names (key, org, tier, route, upstream,
// client address, or one global bucket), and the limit as scaled for the key's tier. The limit stage charges by
// it, the reconcile and the limit metrics find the same buckets again by it, and budgets (src/spend/) share it.
import type { RequestState } from '../server/request-state.js'
import type { CompiledLimit } from './limit.js'
import { calibrated } from '../traffic/calibrate.js'

/** The bucket a limit charges for this request ('' = the limit does not apply: a key without an org). */
export function scopeOf(l: CompiledLimit, s: RequestState): string | null {
  switch (l.per) {
    case 'key':
      return s.keyId
    case 'org':
      return s.org === '' ? null : s.org
    case 'tier':
      return s.tier === '' ? null : s.tier
    case 'route':
      return s.route!.scope
    case 'upstream':
      // the route's own upstream, also when a fallback answered: reconcile must hit the bucket that was charged
      return s.route!.upstream.name
    case 'ip':
      return s.clientIp
    case 'global':
      return ''
  }
}

/** The limit as it applies to this request's key (tier scale), same bucket. */
export function scaledFor(l: CompiledLimit, s: RequestState): CompiledLimit {
  // calibrate: from_headers — the rate the route's upstream's provider reports (src/traffic/calibrate.ts)
  if (l.calibrate) return calibrated(l, s.route!.upstream.balancer.table, s.route!.upstream.balancer.account)
  return s.scale === 1 || l.per !== 'key' ? l : (s.plan.limits.scaled.get(l)?.get(s.scale) ?? l)
}
