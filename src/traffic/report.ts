// What the main thread reports about targets, read from the shared target table at scrape time: the gauges on
// /metrics and the `targets` list of /status.json. Nothing here runs per request.
import { Counter, Gauge, type Registry } from 'prom-client'
import type { TargetTable } from './target-table.js'
import type { HealthChecker } from './health.js'
import { ACCOUNT } from './provider-limits.js'
import { SHED_SCOPE, shedKey, type AdaptiveConfig } from './adaptive.js'

interface UpstreamLike {
  targets: string[]
  weights?: number[]
  health?: unknown
}

export interface TargetReport {
  upstream: string
  target: string
  weight: number
  /** usable: neither ejected nor marked down */
  state: 'up' | 'ejected' | 'unhealthy'
  inflight: number
  ejected_until: string | null
  ejections: number
  latency_ewma_ms: number | null
  /** the last active check ('pass' or 'fail: …'), null without health checks or before the first one */
  health_check: string | null
}

export function reportTargets(table: TargetTable, upstreams: Record<string, UpstreamLike>, health: HealthChecker | null): TargetReport[] {
  const now = Date.now()
  const out: TargetReport[] = []
  for (const [name, u] of Object.entries(upstreams)) {
    u.targets.forEach((url, i) => {
      const slot = table.slot(name, url)
      if (slot < 0) return
      const until = table.ejectedUntil(slot)
      const ewma = table.ewma(slot)
      out.push({
        upstream: name,
        target: url,
        weight: u.weights?.[i] ?? 1,
        state: table.down(slot) ? 'unhealthy' : until > now ? 'ejected' : 'up',
        inflight: table.inflight(slot),
        ejected_until: until > now ? new Date(until).toISOString() : null,
        ejections: table.ejections(slot),
        latency_ewma_ms: ewma === 0 ? null : Math.round(ewma * 10) / 10,
        health_check: health?.lastOutcome(name, url) || null,
      })
    })
  }
  return out
}

export function registerTargetMetrics(registry: Registry, read: () => TargetReport[]): void {
  new Gauge({
    name: 'leaky_upstream_target_up',
    help: 'Whether a target of an upstream takes requests: 1, or 0 while ejected (passive outlier detection) or marked unhealthy by active health checks.',
    labelNames: ['upstream', 'target', 'state'],
    registers: [registry],
    collect(this: Gauge) {
      this.reset()
      for (const t of read()) this.set({ upstream: t.upstream, target: t.target, state: t.state }, t.state === 'up' ? 1 : 0)
    },
  })
  new Gauge({
    name: 'leaky_upstream_target_inflight',
    help: 'Requests in flight to a target of an upstream, all worker threads together (what p2c_least_inflight compares).',
    labelNames: ['upstream', 'target'],
    registers: [registry],
    collect(this: Gauge) {
      this.reset()
      for (const t of read()) this.set({ upstream: t.upstream, target: t.target }, t.inflight)
    },
  })
  new Gauge({
    name: 'leaky_upstream_target_ejections',
    help: 'Times a target has been ejected in its current run of ejections (its next ejection lasts base_ejection · 2^this).',
    labelNames: ['upstream', 'target'],
    registers: [registry],
    collect(this: Gauge) {
      this.reset()
      for (const t of read()) this.set({ upstream: t.upstream, target: t.target }, t.ejections)
    },
  })
}

export interface ProviderReport {
  upstream: string
  /** what the provider reported last (null: never) */
  remaining_requests: number | null
  remaining_tokens: number | null
  /** the provider said the account is exhausted until then (null: it is not) */
  exhausted_until: string | null
  /** requests answered locally (or sent to the fallback) because of it */
  refused: number
  /** rate-limit headers that did not parse, ignored */
  malformed: number
  /** requests of routes to this upstream in flight (all workers), refused by its bulkhead, retries refused by its budget */
  inflight: number
  shed: number
  retry_budget_denied: number
  /** the adaptive concurrency limit now (null: no adaptive section) */
  concurrency_limit: number | null
  /** requests waiting in its bulkhead's queue (all workers) */
  queued: number
  /** the account's limits per minute as the provider reported them last (null: never), what calibrate follows */
  limit_requests: number | null
  limit_tokens: number | null
}

export function reportProviders(table: TargetTable, upstreams: Record<string, { adaptive?: AdaptiveConfig }>): ProviderReport[] {
  const now = Date.now()
  const out: ProviderReport[] = []
  for (const name of Object.keys(upstreams)) {
    const slot = table.slot(name, ACCOUNT)
    if (slot < 0) continue
    const rr = table.remaining(slot, 'requests')
    const rt = table.remaining(slot, 'tokens')
    const until = table.quotaUntil(slot)
    out.push({
      upstream: name,
      remaining_requests: rr < 0 ? null : rr,
      remaining_tokens: rt < 0 ? null : rt,
      exhausted_until: until > now ? new Date(until).toISOString() : null,
      refused: table.refused(slot),
      malformed: table.malformed(slot),
      inflight: table.inflight(slot),
      shed: table.shed(slot),
      retry_budget_denied: table.budgetDenied(slot),
      concurrency_limit: adaptiveLimit(table, slot, upstreams[name].adaptive),
      queued: table.waiting(slot),
      limit_requests: table.providerLimit(slot, 'requests') || null,
      limit_tokens: table.providerLimit(slot, 'tokens') || null,
    })
  }
  return out
}

/** The limit as the workers read it (AdaptiveLimit.limit), rounded down as they use it. */
function adaptiveLimit(table: TargetTable, slot: number, a: AdaptiveConfig | undefined): number | null {
  if (a === undefined) return null
  const l = table.adaptLimit(slot)
  return Math.floor(l === 0 ? (a.initial ?? a.max) : Math.min(a.max, Math.max(a.min, l)))
}

export interface ShedReport {
  upstream: string
  /** '' for requests without a tier */
  tier: string
  shed: number
}

/** Requests refused by each adaptive upstream's limit, by tier. */
export function reportAdaptiveShed(table: TargetTable, upstreams: Record<string, { adaptive?: AdaptiveConfig }>, tiers: Record<string, unknown>): ShedReport[] {
  const out: ShedReport[] = []
  for (const [name, u] of Object.entries(upstreams)) {
    if (u.adaptive === undefined) continue
    for (const tier of ['', ...Object.keys(tiers)]) {
      const slot = table.slot(SHED_SCOPE, shedKey(name, tier))
      if (slot >= 0) out.push({ upstream: name, tier, shed: table.shed(slot) })
    }
  }
  return out
}

export function registerAdaptiveMetrics(registry: Registry, read: () => ShedReport[]): void {
  new Counter({
    name: 'leaky_adaptive_shed_total',
    help: 'Requests answered 503 LEAKY_OVERLOADED by an upstream\'s adaptive concurrency limit, by the key\'s tier ("none": no tier); the lowest priority is shed first.',
    labelNames: ['upstream', 'tier'],
    registers: [registry],
    collect(this: Counter) {
      this.reset()
      for (const r of read()) if (r.shed > 0) this.inc({ upstream: r.upstream, tier: r.tier === '' ? 'none' : r.tier }, r.shed)
    },
  })
}

export function registerProviderMetrics(registry: Registry, read: () => ProviderReport[]): void {
  new Gauge({
    name: 'leaky_provider_remaining',
    help: 'Quota the provider reported left for this upstream\'s account in its last rate-limit headers, by kind (requests, tokens).',
    labelNames: ['upstream', 'kind'],
    registers: [registry],
    collect(this: Gauge) {
      this.reset()
      for (const p of read()) {
        if (p.remaining_requests !== null) this.set({ upstream: p.upstream, kind: 'requests' }, p.remaining_requests)
        if (p.remaining_tokens !== null) this.set({ upstream: p.upstream, kind: 'tokens' }, p.remaining_tokens)
      }
    },
  })
  new Gauge({
    name: 'leaky_provider_limit',
    help: 'The limit per minute the provider reported for this upstream\'s account in its last answer, by kind (requests, tokens): what calibrate: from_headers limits follow.',
    labelNames: ['upstream', 'kind'],
    registers: [registry],
    collect(this: Gauge) {
      this.reset()
      for (const p of read()) {
        if (p.limit_requests !== null) this.set({ upstream: p.upstream, kind: 'requests' }, p.limit_requests)
        if (p.limit_tokens !== null) this.set({ upstream: p.upstream, kind: 'tokens' }, p.limit_tokens)
      }
    },
  })
  new Gauge({
    name: 'leaky_provider_exhausted',
    help: 'The provider said this upstream\'s account is exhausted: 1 until its reset (requests go to the fallback or get 429 LEAKY_UPSTREAM_QUOTA), else 0.',
    labelNames: ['upstream'],
    registers: [registry],
    collect(this: Gauge) {
      this.reset()
      for (const p of read()) this.set({ upstream: p.upstream }, p.exhausted_until === null ? 0 : 1)
    },
  })
  new Gauge({
    name: 'leaky_upstream_inflight',
    help: 'Requests of routes to an upstream in flight, all worker threads together (what its max_inflight bounds).',
    labelNames: ['upstream'],
    registers: [registry],
    collect(this: Gauge) {
      this.reset()
      for (const p of read()) this.set({ upstream: p.upstream }, p.inflight)
    },
  })
  new Gauge({
    name: 'leaky_upstream_concurrency_limit',
    help: 'The adaptive concurrency limit of an upstream now (Gradient2 on its latency to response headers), all worker threads together.',
    labelNames: ['upstream'],
    registers: [registry],
    collect(this: Gauge) {
      this.reset()
      for (const p of read()) if (p.concurrency_limit !== null) this.set({ upstream: p.upstream }, p.concurrency_limit)
    },
  })
  new Gauge({
    name: 'leaky_bulkhead_queued',
    help: 'Requests waiting in an upstream\'s bulkhead queue for a place under its max_inflight, all worker threads together.',
    labelNames: ['upstream'],
    registers: [registry],
    collect(this: Gauge) {
      this.reset()
      for (const p of read()) this.set({ upstream: p.upstream }, p.queued)
    },
  })
  new Counter({
    name: 'leaky_bulkhead_shed_total',
    help: 'Requests answered 503 LEAKY_OVERLOADED because the max_inflight of their upstream was reached (its queue, if any, full or waited out).',
    labelNames: ['upstream'],
    registers: [registry],
    collect(this: Counter) {
      this.reset()
      for (const p of read()) if (p.shed > 0) this.inc({ upstream: p.upstream }, p.shed)
    },
  })
  new Counter({
    name: 'leaky_retry_budget_denied_total',
    help: 'Retries not sent because the upstream\'s retry budget (retry.budget percent of its requests in flight) was spent.',
    labelNames: ['upstream'],
    registers: [registry],
    collect(this: Counter) {
      this.reset()
      for (const p of read()) if (p.retry_budget_denied > 0) this.inc({ upstream: p.upstream }, p.retry_budget_denied)
    },
  })
  new Counter({
    name: 'leaky_provider_refused_total',
    help: 'Requests not forwarded to an upstream because its provider account was exhausted.',
    labelNames: ['upstream'],
    registers: [registry],
    collect(this: Counter) {
      this.reset()
      for (const p of read()) if (p.refused > 0) this.inc({ upstream: p.upstream }, p.refused)
    },
  })
  new Counter({
    name: 'leaky_provider_headers_malformed_total',
    help: 'Provider rate-limit headers (x-ratelimit-*, anthropic-ratelimit-*, retry-after) that did not parse and were ignored.',
    labelNames: ['upstream'],
    registers: [registry],
    collect(this: Counter) {
      this.reset()
      for (const p of read()) if (p.malformed > 0) this.inc({ upstream: p.upstream }, p.malformed)
    },
  })
}
