// Stage 5 — limit: where a request is limited. Every limit of the route is charged on the shared bucket table,
// all or nothing (src/limiter/policy.ts): one clock read, one CAS per bucket, a refund of the ones charged before a
// denial. A denial is a 429 in the provider's shape with Retry-After, RateLimit-Policy/RateLimit and x-ratelimit-*;
// an admitted LLM request carries the x-ratelimit-* headers of its tightest limits on the response.
import { Next, type RequestState } from '../request-state.js'
import { replyError } from '../reply.js'
import { ctx } from '../context.js'
import { Charges, chargeAll } from '../../limiter/policy.js'
import { rateLimitHeaders } from '../../limiter/headers.js'
import { Status } from '../../limiter/table.js'
import { compileLimit, type CompiledLimit, type LimitDef } from '../../limiter/limit.js'

/** The limits, compiled once per plan; per-key limits once per tier scale in use (they share the bucket). */
export interface LimitPlan {
  /** by route index: the limits the route charges, in config order */
  byRoute: CompiledLimit[][]
  /** per-key limits scaled for a tier: `${name}@${scale}` */
  scaled: Map<string, CompiledLimit>
}

export function compileLimits(defs: Record<string, LimitDef>, routes: Array<{ limits: string[] }>, scales: number[]): LimitPlan {
  const base = new Map<string, CompiledLimit>()
  const scaled = new Map<string, CompiledLimit>()
  for (const [name, def] of Object.entries(defs)) {
    base.set(name, compileLimit(def, 1))
    if (def.per !== 'key') continue
    for (const sc of scales) if (sc !== 1) scaled.set(`${name}@${sc}`, compileLimit(def, sc))
  }
  return { byRoute: routes.map((r) => r.limits.map((n) => base.get(n)!)), scaled }
}

/** The bucket a limit charges for this request ('' = the limit does not apply: a key without an org). */
export function scopeOf(l: CompiledLimit, s: RequestState): string | null {
  switch (l.per) {
    case 'key':
      return s.keyId
    case 'org':
      return s.org === '' ? null : s.org
    case 'route':
      return s.route!.scope
    case 'upstream':
      return s.upstream!.name
    case 'ip':
      return s.clientIp
    case 'global':
      return ''
  }
}

/** The limit as it applies to this request's key (tier scale), same bucket. */
export function scaledFor(l: CompiledLimit, s: RequestState): CompiledLimit {
  return s.scale === 1 || l.per !== 'key' ? l : (s.plan.limits.scaled.get(`${l.name}@${s.scale}`) ?? l)
}

// one per thread: a decision is made and rendered synchronously, never across an await
const charges = new Charges()

export function limit(s: RequestState): Next {
  const list = s.plan.limits.byRoute[s.route!.index]
  if (list.length === 0) return Next.CONTINUE
  const table = ctx.table!
  charges.clear()
  for (let i = 0; i < list.length; i++) {
    const l = scaledFor(list[i], s)
    const scope = scopeOf(l, s)
    if (scope === null) continue
    const cost = l.unit === 'requests' ? 1 : s.costTokens
    if (cost > 0) charges.add(l, scope, cost)
  }
  if (charges.length === 0) return Next.CONTINUE
  const st = chargeAll(table, charges, table.clock.now())
  const headers: string[] = []
  rateLimitHeaders(charges, headers)
  if (st === Status.OK) {
    s.charged = true
    s.responseHeaders = headers
    return Next.CONTINUE
  }
  const l = charges.limits[charges.decider]
  s.limitDenied = l === undefined ? '' : l.name
  switch (st) {
    case Status.DENIED:
      return replyError(s, 'LEAKY_RATE_LIMITED', false, headers,
        `rate limit "${l.name}" exceeded (${l.limitValue} ${l.unit} per ${period(l.periodMs)}); retry after ${headers[1]} s`)
    case Status.OVER_BURST:
      return replyError(s, 'LEAKY_OVER_BURST', false, headers,
        `this request costs ${charges.costs[charges.decider]} ${l.unit} but limit "${l.name}" holds at most ${l.burst}: it can never be admitted; lower max_tokens or the prompt`)
    case Status.FULL:
      return replyError(s, 'LEAKY_TABLE_FULL', false, headers)
    case Status.BUSY:
      return replyError(s, 'LEAKY_TABLE_FULL', false, headers, 'rate-limit table slot busy; try again')
    default: {
      const never: never = st as never
      return never
    }
  }
}

/**
 * Account's half of the token limits: replace the estimate pre-charged on every token bucket with the real usage
 * (a refund when the request used less, an extra charge when it used more).
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
}

function period(ms: number): string {
  if (ms % 86_400_000 === 0) return ms === 86_400_000 ? 'day' : `${ms / 86_400_000} days`
  if (ms % 3_600_000 === 0) return ms === 3_600_000 ? 'hour' : `${ms / 3_600_000} hours`
  if (ms % 60_000 === 0) return ms === 60_000 ? 'minute' : `${ms / 60_000} minutes`
  if (ms % 1000 === 0) return ms === 1000 ? 'second' : `${ms / 1000} seconds`
  return `${ms} ms`
}
