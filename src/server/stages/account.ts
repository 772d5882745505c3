// Stage 9 — account: runs exactly once per request, however it ended (response complete, error reply, upstream
// failure, client abort), and only records what the request left: the admit slot and bulkhead places given back,
// the real usage handed to the reconciles (src/limiter/reconcile.ts, src/spend/reconcile.ts), metrics, the usage
// ledger's row, the span and one access line. It imports no stage: the line ends here.
import { leaveBulkheads } from '../../traffic/bulkhead-release.js'
import type { RequestState } from '../request-state.js'
import { ctx } from '../context.js'
import { ERRORS } from '../../errors.js'
import { metrics, DenyReason, UsageIssue } from '../../observability/metrics.js'
import { reconcile } from '../../limiter/reconcile.js'
import { scopeOf } from '../../limiter/subject.js'
import type { CompiledLimit } from '../../limiter/limit.js'
import { VIA_NAME } from '../../limiter/redis.js'
import { costPico, formatUsd } from '../../spend/prices.js'
import { requestEnded } from '../../tracing/hooks.js'
import { recordUsage } from '../../ledger/outbox.js'
import { reconcileBudgets } from '../../spend/reconcile.js'

export function account(s: RequestState): void {
  if (s.accounted) return
  s.accounted = true
  if (s.inflightTaken) {
    Atomics.sub(ctx.inflight, 0, 1)
    ctx.local--
  }
  leaveBulkheads(s)
  const status = s.errorCode === 'LEAKY_CLIENT_CLOSED' ? 499 : s.status !== 0 ? s.status : s.errorCode !== null ? ERRORS[s.errorCode].status : 0
  const usage = s.meter === null ? null : s.meter.usage()
  // tokens really used: the meter's total (reported, or counted on a cut); none when the upstream answered no
  // success; the estimate itself when the usage could not be read — charged as the most the request could cost
  if (s.charged && s.costTokens > 0) {
    reconcile(s, s.cacheTokens >= 0 ? s.cacheTokens : usage === null ? 0 : usage.source === 'unknown' ? s.costTokens : usage.total)
  }
  if (s.cache !== null) s.cache.finished()
  const end = performance.now()
  metrics.request(s, status, end)
  if (metrics.enabled && (s.charged || s.limitDenied !== '')) limitDecisions(s)
  // pico-USD at the plan's prices; -1: no price for the model, or no usage to price
  let cost = -1
  if (usage !== null && s.upstream !== null) {
    if (usage.source === 'unknown') {
      usageUnknown(s, s.upstream.name, s.meter!.unknown)
      metrics.cost(s.upstream.name, usage.model || s.model, s.keyId, null)
    } else {
      if (usage.model === '') usage.model = s.model
      const price = s.plan.prices.lookup(s.upstream.provider, usage.model)
      if (price !== null) cost = costPico(price, usage)
      metrics.cost(s.upstream.name, usage.model, s.keyId, cost < 0 ? null : Math.round(cost / 1000))
      metrics.usage(s.upstream.name, usage)
      // a byte bound is no estimate of the count: the ratio is observed for counted prompts only
      if (usage.source === 'reported' && (s.lazyPrompt === null || s.lazyPrompt.counted)) {
        metrics.estimateError(s.upstream.name, s.lazyPrompt === null ? s.promptTokens : s.lazyPrompt.tokens(), usage.prompt)
      } else if (usage.source === 'partial') metrics.usageIssue(s.upstream.name, UsageIssue.PARTIAL)
    }
  }
  s.costPico = cost
  // budgets: the real cost replaces the pre-charge — nothing spent without a success or from the cache; the
  // pre-charge stays when the usage could not be read or the answering model has no price
  if (s.budgetCharged || s.clusterBudget !== null) {
    reconcileBudgets(s, s.cacheTokens >= 0 || usage === null ? 0 : usage.source === 'unknown' || cost < 0 ? -1 : cost)
  }
  requestEnded(s, status, usage, end)
  // unknown usage shows no numbers: its tokens_estimate is what stayed charged
  const known = usage === null || usage.source === 'unknown' ? null : usage
  if (s.plan.ledger) {
    // the same numbers the access line shows, cost rounded to its six places
    recordUsage(Date.now(), s.keyId, s.org, s.shape === null ? '' : usage?.model || s.model, s.route === null ? '' : s.route.path, status,
      known?.prompt ?? 0, known?.completion ?? 0, known?.cached ?? 0, known?.thoughts ?? 0, known?.total ?? 0,
      cost < 0 ? 0 : Math.round(cost / 1e6), known !== null && cost < 0)
  }
  if (!s.plan.accessLog) return
  // one flat line; the path is logged without its query string, so a ?key= credential never reaches a log
  ctx.access.write({
    msg: 'access',
    req_id: s.requestId,
    trace_id: s.traceId,
    method: s.method,
    path: s.url,
    route: s.route === null ? null : s.route.path,
    upstream: s.upstream === null ? null : s.upstream.name,
    status,
    error: s.errorCode,
    limit: s.limitDenied === '' ? undefined : s.limitDenied,
    key_id: s.keyId === '' ? undefined : s.keyId,
    detail: s.errorDetail === '' ? undefined : s.errorDetail,
    duration_ms: round(end - s.startMs),
    ttfb_ms: s.ttfbMs < 0 ? null : round(s.ttfbMs),
    attempts: s.attempts > 1 ? s.attempts : undefined,
    models: s.modelCall === null ? undefined : s.modelCall.trail,
    bytes_in: s.bytesIn,
    bytes_out: s.bytesOut,
    client_ip: s.clientIp,
    model: s.shape === null ? undefined : usage?.model || s.model,
    tokens_estimate: s.shape === null ? undefined : s.costTokens,
    tokens_prompt: known?.prompt,
    tokens_completion: known?.completion,
    tokens_total: known?.total,
    tokens_cached: known != null && known.cached > 0 ? known.cached : undefined,
    tokens_cache_write: known != null && known.cacheWrite > 0 ? known.cacheWrite : undefined,
    tokens_thoughts: known != null && known.thoughts > 0 ? known.thoughts : undefined,
    tokens_tool_prompt: known != null && known.toolPrompt > 0 ? known.toolPrompt : undefined,
    tokens_source: usage?.source,
    cost_usd: cost < 0 ? undefined : formatUsd(cost),
    cluster: s.cluster === null ? undefined : VIA_NAME[s.cluster.via],
    cache: s.cacheStatus === '' ? undefined : s.cacheStatus,
    tokens_charged: s.cacheTokens >= 0 ? s.cacheTokens : undefined,
  })
}

/** Upstreams whose unreadable usage this thread has logged: one warning each, the metric counts every response. */
const warnedUnknown = new Set<string>()

function usageUnknown(s: RequestState, upstream: string, reason: string): void {
  metrics.usageIssue(upstream, reason === 'encoding' ? UsageIssue.ENCODING : UsageIssue.INVALID)
  const k = upstream + '\0' + reason
  if (warnedUnknown.has(k)) return
  warnedUnknown.add(k)
  ctx.logger.warn({
    msg: 'usage unknown', upstream, reason, req_id: s.requestId,
    detail: reason === 'encoding' ? 'a Content-Encoding the proxy does not decode: the estimate stays charged'
      : 'usage fields of the wrong type or negative: ignored, the estimate stays charged',
    tokens_estimate: s.costTokens,
  })
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}

// Limiter decisions for metrics, from what the limit stage left on the request: all or nothing, so either every
// limit it charged allowed the request, or one denied it (the others were rolled back, not decided).
function limitDecisions(s: RequestState): void {
  if (!s.charged) {
    const reason = s.errorCode === 'LEAKY_OVER_BURST' ? DenyReason.OVER_BURST : s.errorCode === 'LEAKY_TABLE_FULL' ? DenyReason.TABLE_FULL
      : s.errorCode === 'LEAKY_REDIS_UNAVAILABLE' ? DenyReason.BACKEND : DenyReason.RATE
    return metrics.limitDecision(metrics.limitSlot(s.limitDenied), false, reason)
  }
  allowed(s, s.plan.limits.byRoute[s.route!.index])
  if (s.cluster !== null) allowed(s, s.plan.limits.clusterByRoute[s.route!.index])
}

function allowed(s: RequestState, list: CompiledLimit[]): void {
  for (let i = 0; i < list.length; i++) {
    const l = list[i]
    // the limit stage skips a limit without a subject (a key with no org) or without a cost (no tokens estimated)
    if (scopeOf(l, s) !== null && (l.unit === 'requests' || s.costTokens > 0)) metrics.limitDecision(metrics.limitSlot(l.name), true)
  }
}
