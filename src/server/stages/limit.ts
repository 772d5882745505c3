// Stage 5 — limit: where a request is limited. Every local limit of the route is charged on the shared bucket
// table, all or nothing (src/limiter/policy.ts): one clock read, one CAS per bucket, a refund of the ones charged
// before a denial. `scope: cluster` limits are then charged through Redis (src/limiter/cluster.ts), all in one
// call, and a denial there refunds the local charges. A denial is a 429 in the provider's shape with Retry-After,
// RateLimit-Policy/RateLimit and x-ratelimit-*; an admitted request carries them on its response too. Either way
// both x-ratelimit families are there when the route has request and token limits (src/limiter/headers.ts).
// Budgets in money (budget.ts) are charged after the local limits, and cluster budgets before the cluster limits,
// all in the same all-or-nothing decision.
import { Next, recountPrompt, type RequestState } from '../request-state.js'
import { replyError } from '../reply.js'
import { ctx } from '../context.js'
import { Charges, chargeAll, UNKNOWN_TAT } from '../../limiter/policy.js'
import { rateLimitHeaders } from '../../limiter/headers.js'
import { Status } from '../../limiter/table.js'
import { compileLimit, type CompiledLimit } from '../../limiter/limit.js'
import type { Config } from '../../config/index.js'
import { RedisCharges, Via } from '../../limiter/redis.js'
import { hasBody, StreamingBody } from '../body.js'
import { limitDecided, limitPending } from '../../tracing/hooks.js'
import { chargeBudgets, chargeClusterBudgets } from './budget.js'
import { reconcileBudgets } from '../../spend/reconcile.js'
import { reconcile } from '../../limiter/reconcile.js'
import { scaledFor, scopeOf } from '../../limiter/subject.js'

/** The limits, compiled once per plan; per-key limits once per tier scale in use (they share the bucket). */
export interface LimitPlan {
  /** by route index: the local limits the route charges (this proxy's bucket table), in config order */
  byRoute: CompiledLimit[][]
  /** by route index: its `scope: cluster` limits (Redis), in config order */
  clusterByRoute: CompiledLimit[][]
  /** per-key limits scaled for a tier, by base limit then scale (no string built per charge) */
  scaled: Map<CompiledLimit, Map<number, CompiledLimit>>
}

export function compileLimits(defs: Config['limits'], routes: Config['routes'], scales: number[]): LimitPlan {
  const base = new Map<string, CompiledLimit>()
  const scaled = new Map<CompiledLimit, Map<number, CompiledLimit>>()
  for (const [name, def] of Object.entries(defs)) {
    const l = compileLimit(def, 1)
    base.set(name, l)
    if (def.per !== 'key') continue
    const byScale = new Map<number, CompiledLimit>()
    for (const sc of scales) if (sc !== 1) byScale.set(sc, compileLimit(def, sc))
    scaled.set(l, byScale)
  }
  const pick = (r: Config['routes'][number], scope: 'local' | 'cluster') => r.limits.filter((n) => defs[n].scope === scope).map((n) => base.get(n)!)
  return { byRoute: routes.map((r) => pick(r, 'local')), clusterByRoute: routes.map((r) => pick(r, 'cluster')), scaled }
}

// one per thread for routes with local limits only: that decision is made and rendered synchronously
const charges = new Charges()

/**
 * Charge the route's limits: local ones on this proxy's table (synchronous), then — only if they admitted — the
 * cluster ones through Redis (ctx.cluster), all or nothing across both. CONTINUE/REPLIED when decided now; PENDING
 * when Redis is being asked, and `then(s)` runs once it admitted the request.
 */
export function limit(s: RequestState, then: (s: RequestState) => void): Next {
  const i = s.route!.index
  const local = s.plan.limits.byRoute[i]
  const cluster = s.plan.limits.clusterByRoute[i]
  const budgeted = s.plan.budgets.byRoute[i].length > 0
  const clusterBudgeted = s.plan.budgets.clusterByRoute[i].length > 0
  if (local.length === 0 && cluster.length === 0 && !budgeted && !clusterBudgeted) return Next.CONTINUE
  // the local charges outlive this call when Redis is asked (a denial there refunds them): one object per request then
  const lc = cluster.length === 0 && !clusterBudgeted ? charges : new Charges()
  lc.clear()
  collect(local, s, lc, true)
  if (lc.length > 0 || budgeted) {
    const table = ctx.table!
    const now = table.clock.now()
    if (lc.length > 0) {
      let st = chargeAll(table, lc, now)
      // a prompt pre-charged at its byte bound is denied only on its exact count
      if (st !== Status.OK && recountPrompt(s)) {
        lc.clear()
        collect(local, s, lc, true)
        st = chargeAll(table, lc, now)
      }
      if (st !== Status.OK) return deny(s, lc, st)
    }
    // budgets after the limits: a request a limit refuses spends nothing, and a budget denial refunds the limits
    if (budgeted && chargeBudgets(s, now) !== Next.CONTINUE) {
      refund(lc)
      return Next.REPLIED
    }
  }
  if (clusterBudgeted) {
    // cluster budgets before cluster limits: a cluster budget is refunded exactly, a request limit in Redis is not
    const r = chargeClusterBudgets(s)
    if (r === false) return refused(s, lc)
    if (r !== true) {
      if (!s.route!.readsBody && hasBody(s) && s.streamBody === null) s.streamBody = new StreamingBody(s)
      limitPending(s)
      r.then((ok) => {
        if (!ok) return void refused(s, lc)
        if (s.finished) {
          // the client left while Redis decided: as in settle, the request counts, its estimate and cost do not
          s.charged = true
          reconcile(s, 0)
          reconcileBudgets(s, 0)
          return
        }
        if (clusterLimits(s, lc, then) === Next.CONTINUE) then(s)
      })
      return Next.PENDING
    }
  }
  return clusterLimits(s, lc, then)
}

// a budget refused the request (and replied): the local limits and budgets give back what it took
function refused(s: RequestState, lc: Charges): Next {
  refund(lc)
  reconcileBudgets(s, 0)
  return Next.REPLIED
}

/** The route's `scope: cluster` limits, through Redis, after everything local admitted the request. */
function clusterLimits(s: RequestState, lc: Charges, then: (s: RequestState) => void): Next {
  const cluster = s.plan.limits.clusterByRoute[s.route!.index]
  if (cluster.length === 0) return admitted(s, lc)
  const rc = new RedisCharges()
  collect(cluster, s, rc, false)
  if (rc.length === 0) return admitted(s, lc)
  const backend = ctx.cluster!
  s.clusterBy = backend
  s.cluster = rc
  const r = backend.decide(rc)
  if (typeof r === 'number') return settle(s, lc)
  // a body that streams to the upstream must be taken from uWS now (onData is only set in the handler's tick);
  // StreamingBody pauses the client once 64 KiB wait, so nothing piles up while Redis decides
  if (!s.route!.readsBody && hasBody(s) && s.streamBody === null) s.streamBody = new StreamingBody(s)
  limitPending(s)
  r.then(() => {
    if (settle(s, lc) === Next.CONTINUE) then(s)
  })
  return Next.PENDING
}

// `peekFree`: a local token limit is kept at cost 0 for a request without a token estimate (a GET, a non-LLM path):
// the table only reads its level (a 0 charge never denies, never inserts), so the response still reports the
// tokens headers. A cluster limit is left out instead: reading it would be a Redis call.
function collect(list: CompiledLimit[], s: RequestState, out: Charges, peekFree: boolean): void {
  for (let i = 0; i < list.length; i++) {
    const l = scaledFor(list[i], s)
    const scope = scopeOf(l, s)
    if (scope === null) continue
    const cost = l.unit === 'requests' ? 1 : s.costTokens
    if (cost > 0 || peekFree) out.add(l, scope, cost)
  }
}

/** Redis (or on_error) has decided s.cluster; the local charges `lc` already admitted. */
function settle(s: RequestState, lc: Charges): Next {
  const rc = s.cluster!
  if (rc.status !== Status.OK) {
    // all or nothing: the local buckets and the budgets give back what this request took
    refund(lc)
    reconcileBudgets(s, 0)
    if (s.finished) return Next.REPLIED
    return deny(s, merge(lc, rc), rc.status, rc.via === Via.CLOSED)
  }
  if (s.finished) {
    // the client left while Redis decided: the request counts, its token estimate does not
    s.charged = true
    reconcile(s, 0)
    return Next.REPLIED
  }
  return admitted(s, merge(lc, rc))
}

function admitted(s: RequestState, c: Charges): Next {
  s.charged = true
  limitDecided(s)
  const headers: string[] = []
  rateLimitHeaders(c, headers)
  s.responseHeaders = headers
  return Next.CONTINUE
}

// The buckets' levels after the refund replace the charged ones in `lc`: the 429's headers report them.
function refund(lc: Charges): void {
  if (lc.length === 0) return
  const table = ctx.table!
  const now = table.clock.now()
  for (let i = 0; i < lc.length; i++) {
    lc.tats[i] = table.adjust(lc.limits[i], lc.scopes[i], -lc.costs[i], now) === Status.OK ? table.tat : UNKNOWN_TAT
  }
  lc.now = now
}

// One Charges for the headers: every entry's drain time rebased to now = 0, since local and Redis clocks differ.
function merge(lc: Charges, rc: Charges): Charges {
  if (lc.length === 0) return rc
  const m = new Charges()
  for (let i = 0; i < lc.length; i++) {
    m.add(lc.limits[i], lc.scopes[i], lc.costs[i])
    m.tats[i] = lc.tats[i] === UNKNOWN_TAT ? UNKNOWN_TAT : BigInt(lc.afterNs(i))
  }
  for (let i = 0; i < rc.length; i++) {
    const k = m.length
    m.add(rc.limits[i], rc.scopes[i], rc.costs[i])
    m.tats[k] = BigInt(rc.afterNs(i))
  }
  m.now = 0n
  m.status = rc.status
  m.decider = rc.decider < 0 ? -1 : lc.length + rc.decider
  m.retryNs = rc.retryNs
  return m
}

function deny(s: RequestState, c: Charges, st: Status, redisClosed = false): Next {
  limitDecided(s)
  const headers: string[] = []
  rateLimitHeaders(c, headers)
  const l = c.limits[c.decider]
  s.limitDenied = l === undefined ? '' : l.name
  switch (st) {
    case Status.DENIED:
      return replyError(s, 'LEAKY_RATE_LIMITED', false, headers,
        `rate limit "${l.name}" exceeded (${l.limitValue} ${l.unit} per ${l.calendar === null ? period(l.periodMs) : `calendar ${l.calendar.unit}, ${l.calendar.timeZone}`}); retry after ${headers[1]} s`)
    case Status.OVER_BURST:
      return replyError(s, 'LEAKY_OVER_BURST', false, headers,
        `this request costs ${c.costs[c.decider]} ${l.unit} but limit "${l.name}" holds at most ${l.burst}: it can never be admitted; lower max_tokens or the prompt`)
    case Status.FULL:
      return replyError(s, 'LEAKY_TABLE_FULL', false, headers)
    case Status.BUSY:
      if (redisClosed) {
        return replyError(s, 'LEAKY_REDIS_UNAVAILABLE', false, headers,
          `cluster limit "${l.name}" cannot be checked: Redis is unavailable and its on_error is closed; try again later`)
      }
      return replyError(s, 'LEAKY_TABLE_FULL', false, headers, 'rate-limit table slot busy; try again')
    default: {
      const never: never = st as never
      return never
    }
  }
}

function period(ms: number): string {
  if (ms % 86_400_000 === 0) return ms === 86_400_000 ? 'day' : `${ms / 86_400_000} days`
  if (ms % 3_600_000 === 0) return ms === 3_600_000 ? 'hour' : `${ms / 3_600_000} hours`
  if (ms % 60_000 === 0) return ms === 60_000 ? 'minute' : `${ms / 60_000} minutes`
  if (ms % 1000 === 0) return ms === 1000 ? 'second' : `${ms / 1000} seconds`
  return `${ms} ms`
}
