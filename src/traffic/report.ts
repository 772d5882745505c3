// What the main thread reports about targets, read from the shared target table at scrape time: the gauges on
// /metrics and the `targets` list of /status.json. Nothing here runs per request.
import { Gauge, type Registry } from 'prom-client'
import type { TargetTable } from './target-table.js'
import type { HealthChecker } from './health.js'

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
