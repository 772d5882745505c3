// The cache settings compiled once per worker plan: per route index, what the cache stage decides with.
import type { Config } from '../config/index.js'

export interface RouteCachePlan {
  /** the route's path: what /admin/cache/purge selects by */
  route: string
  ttl: number
  swr: number
  maxEntry: number
  scope: 'key' | 'org' | 'global'
  get: boolean
  post: boolean
  deterministic: boolean
  /** replay a stored stream with its original gaps */
  paced: boolean
}

export interface CachePlan {
  chargeTokens: boolean
  ignore: ReadonlySet<string>
  /** by route index; null: the route has no cache */
  byRoute: Array<RouteCachePlan | null>
}

export function compileCache(config: Config): CachePlan {
  return {
    chargeTokens: config.cache.charge_tokens,
    ignore: new Set(config.cache.ignore),
    byRoute: config.routes.map((r) => {
      const c = r.cache
      if (c === undefined) return null
      return {
        route: r.path, ttl: c.ttl, swr: c.stale_while_revalidate, maxEntry: c.max_entry, scope: c.scope,
        get: c.methods.includes('GET'), post: c.methods.includes('POST'), deterministic: c.when === 'deterministic',
        paced: c.replay_pace === 'original',
      }
    }),
  }
}
