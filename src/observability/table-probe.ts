// Adapts the limiter's bucket table (src/limiter/table.ts) to what /metrics and /status report: occupancy and the
// table's own event counters, and how full each limit's fullest bucket is — the "budget near exhaustion" signal.
// Both walk (the table, or every subject config names), so one reading serves every scrape and poll for a second.
import type { Config } from '../config/index.js'
import { compileLimit, type CompiledLimit } from '../limiter/limit.js'
import type { LimiterProbe, TableReport } from './exposition.js'

/** The part of BucketTable this reads. */
export interface ProbedTable {
  readonly capacity: number
  stats(): { evicted: number; full: number }
  occupancy(now: bigint): { live: number }
  /** Status OK (0) with afterNs = ns until the bucket is empty */
  peek(limit: CompiledLimit, scope: string, now: bigint): number
  readonly afterNs: number
}

const MAX_AGE_MS = 1000
/** subjects peeked per limit at most (per: key limits with huge key lists) */
const MAX_SUBJECTS = 10_000

/**
 * `now` must be on the table's clock (BucketTable.clock). With `config`, fill() reports for every limit whose
 * subjects config can name — global, upstream, route, org, key — the level of its fullest bucket as a share of its
 * burst (0 empty; near 1 the next request is denied). Per-ip limits have no such list and are left out.
 */
export function tableProbe(table: ProbedTable, now: () => bigint, config: (() => Config) | null = null): LimiterProbe {
  let at = -Infinity
  let used = 0
  let fillAt = -Infinity
  let fill: Array<[string, number]> = []
  let plans: { config: Config; limits: Array<{ name: string; subjects: Array<[CompiledLimit, string]> }> } | null = null
  return {
    subject: table,
    table(): TableReport {
      const t = performance.now()
      if (t - at >= MAX_AGE_MS) {
        used = table.occupancy(now()).live
        at = t
      }
      const s = table.stats()
      return { used, capacity: table.capacity, evicted: s.evicted, full: s.full }
    },
    fill(): Array<[string, number]> {
      if (config === null) return []
      const t = performance.now()
      if (t - fillAt < MAX_AGE_MS) return fill
      const cfg = config()
      if (plans === null || plans.config !== cfg) plans = { config: cfg, limits: subjectsOf(cfg) }
      const n = now()
      fill = []
      for (const l of plans.limits) {
        let max = 0
        for (const [limit, scope] of l.subjects) {
          if (table.peek(limit, scope, n) !== 0) continue
          const f = table.afterNs / limit.tauNs
          if (f > max) max = f
        }
        fill.push([l.name, Math.round(max * 1e4) / 1e4])
      }
      fillAt = t
      return fill
    },
  }
}

function subjectsOf(cfg: Config): Array<{ name: string; subjects: Array<[CompiledLimit, string]> }> {
  const out: Array<{ name: string; subjects: Array<[CompiledLimit, string]> }> = []
  for (const def of Object.values(cfg.limits)) {
    let base: CompiledLimit
    try {
      base = compileLimit(def, 1)
    } catch {
      continue // the limit stage refuses such a config anyway
    }
    const subjects: Array<[CompiledLimit, string]> = []
    switch (def.per) {
      case 'global':
        subjects.push([base, ''])
        break
      case 'upstream':
        for (const name of Object.keys(cfg.upstreams)) subjects.push([base, name])
        break
      case 'route':
        for (const r of cfg.routes) subjects.push([base, (r.host ? r.host.toLowerCase() : '') + r.path])
        break
      case 'org':
        for (const org of new Set(cfg.keys.map((k) => k.org).filter((o): o is string => !!o))) subjects.push([base, org])
        break
      case 'key':
        // a tier scales the burst, so each key is measured against its own limit
        for (const k of cfg.keys) subjects.push([k.scale === 1 ? base : compileLimit(def, k.scale), k.id])
        break
      case 'ip':
        continue
    }
    out.push({ name: def.name, subjects: subjects.slice(0, MAX_SUBJECTS) })
  }
  return out
}
