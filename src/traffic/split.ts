// Traffic splits per route (canary, blue/green): each client goes to one upstream of the route's `split`, chosen by
// a hash of its key id (or org, or IP) against the cumulative weights. The hash puts each client at a fixed point
// of [0, 1); the weights cut [0, 1) into ranges in the order written. So a client stays on its side while the
// weights stay, and when they change only the clients in the part of [0, 1) that changed hands move (95/5 → 90/10
// moves the clients in [0.90, 0.95), nobody else). Blue/green is weights 100/0 flipped to 0/100 by a reload.
//
// A key listed in `upstream_override` may name the upstream itself with `x-leaky-upstream` (one of the split's, or
// the route's own); the header is ignored for every other key.
import type { RequestState } from '../server/request-state.js'
import type { Upstream } from '../upstream/upstream.js'

const OVERRIDE_HEADER = 'x-leaky-upstream'

export interface SplitConfig {
  split?: Array<{ upstream: string; weight: number }>
  sticky: 'key' | 'org' | 'ip'
  upstream_override: string[]
}

export class SplitPlan {
  readonly upstreams: Upstream[]
  /** cumulative share of each entry, in [0, 1]; the last is 1 */
  readonly bounds: Float64Array
  readonly sticky: 'key' | 'org' | 'ip'
  readonly override: Set<string>
  /** the upstreams a key in `override` may name: the split's and the route's */
  readonly named: Map<string, Upstream>

  constructor(cfg: SplitConfig, home: Upstream, upstreams: Map<string, Upstream>) {
    const entries = cfg.split ?? []
    this.upstreams = entries.map((e) => upstreams.get(e.upstream)!)
    const total = entries.reduce((a, e) => a + e.weight, 0)
    this.bounds = new Float64Array(entries.length)
    let acc = 0
    entries.forEach((e, i) => {
      acc += e.weight
      this.bounds[i] = i === entries.length - 1 ? 1 : acc / total
    })
    this.sticky = cfg.sticky
    this.override = new Set(cfg.upstream_override)
    this.named = new Map([[home.name, home], ...this.upstreams.map((u): [string, Upstream] => [u.name, u])])
  }

  /** The upstream for this request. */
  choose(s: RequestState): Upstream {
    if (this.override.size > 0 && this.override.has(s.keyId)) {
      const h = s.headers
      for (let i = 0; i < h.length; i += 2) {
        if (h[i] !== OVERRIDE_HEADER) continue
        const u = this.named.get(h[i + 1])
        if (u !== undefined) return u
        break
      }
    }
    if (this.upstreams.length === 0) return s.upstream!
    const subject = this.sticky === 'ip' ? s.clientIp : this.sticky === 'org' && s.org !== '' ? s.org : s.keyId !== '' ? s.keyId : s.clientIp
    const x = point(subject)
    const b = this.bounds
    for (let i = 0; i < b.length; i++) if (x < b[i] && (i === 0 || b[i] > b[i - 1])) return this.upstreams[i]
    return this.upstreams[b.length - 1]
  }
}

/** A client's fixed point in [0, 1): FNV-1a over its UTF-16 units, then murmur3's finaliser for an even spread. */
export function point(subject: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < subject.length; i++) {
    h ^= subject.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return (h >>> 0) / 4294967296
}

/** Send the request to the split's choice: its target and base path replace the route upstream's. */
export function applySplit(s: RequestState, plan: SplitPlan): void {
  const next = plan.choose(s)
  const up = s.upstream!
  if (next === up) return
  const rel = s.upstreamPath.slice(up.targets[s.target].basePath.length)
  s.upstream = next
  s.target = next.pick()
  s.upstreamPath = next.targets[s.target].basePath + rel
}
