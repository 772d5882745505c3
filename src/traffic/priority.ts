// Tier priorities for load shedding under an adaptive concurrency limit (src/traffic/adaptive.ts). The distinct
// `priority` values of the tiers, with 0 for requests without a tier, are ranked from the highest; a request's
// level is its rank / (ranks - 1): 0 for the highest priority, 1 for the lowest. Under an adaptive limit a request
// enters while fewer than limit × (1 - headroom × level) are in flight, so as the upstream fills, the lowest
// priority is refused first and the highest keeps `headroom` of the limit to itself (Netflix's partitioned limiter
// reserves shares the same way; here the shares follow from one headroom instead of a percentage per partition).
// Compiled once per plan; a request costs one Map lookup by its tier name.
import type { Upstream } from '../upstream/upstream.js'
import { SHED_SCOPE, shedKey } from './adaptive.js'

export interface TierPriority {
  /** index into tiers (0: no tier), for the per-tier shed counters */
  readonly index: number
  /** 0: the highest priority … 1: the lowest */
  readonly level: number
}

export class PriorityPlan {
  /** tier names by index; '' (index 0) is "no tier" */
  readonly tiers: readonly string[]
  readonly #of: Map<string, TierPriority>
  readonly #none: TierPriority

  constructor(tiers: Record<string, { priority: number }>) {
    const values = [...new Set([0, ...Object.values(tiers).map((t) => t.priority)])].sort((a, b) => b - a)
    const level = (p: number): number => (values.length === 1 ? 0 : values.indexOf(p) / (values.length - 1))
    this.tiers = ['', ...Object.keys(tiers)]
    this.#of = new Map(Object.entries(tiers).map(([name, t], i) => [name, { index: i + 1, level: level(t.priority) }]))
    this.#none = { index: 0, level: level(0) }
  }

  /** A request's priority by its tier name ('' or a tier no longer configured: priority 0). */
  of(tier: string): TierPriority {
    return tier === '' ? this.#none : (this.#of.get(tier) ?? this.#none)
  }
}

/** The plan's priorities; every adaptive upstream learns where its per-tier shed counters are. */
export function compilePriorities(tiers: Record<string, { priority: number }>, upstreams: Iterable<Upstream>): PriorityPlan {
  const plan = new PriorityPlan(tiers)
  for (const up of upstreams) {
    const a = up.balancer.adaptive
    if (a === null) continue
    a.shedSlots = Int32Array.from(plan.tiers, (tier) => a.table.slot(SHED_SCOPE, shedKey(up.name, tier)))
  }
  return plan
}
