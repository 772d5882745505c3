// Checks across sections: names that must exist (upstream, limit, budget, tier, fallback), combinations that cannot work
// (a per-key limit on an anonymous route) and duplicates. They run on the raw document next to the schema, not
// after it, so one run lists reference errors together with type errors; every access is therefore defensive.
import { createHash } from 'node:crypto'
import { didYouMean } from './suggest.js'
import { resolveModels } from '../translate/models.js'
import { keySlot, limitKeyPrefix } from '../limiter/redis-slot.js'

export interface RefIssue {
  path: (string | number)[]
  message: string
}

type Obj = Record<string, unknown>

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function entries(v: unknown): [string, Obj][] {
  return isObj(v) ? Object.entries(v).filter((e): e is [string, Obj] => isObj(e[1])) : []
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : []
}

export function checkRefs(raw: unknown): RefIssue[] {
  const issues: RefIssue[] = []
  if (!isObj(raw)) return issues
  const upstreams = isObj(raw.upstreams) ? Object.keys(raw.upstreams) : []
  const limits = new Map(entries(raw.limits))
  const budgets = new Map(entries(raw.budgets))
  const tiers = isObj(raw.tiers) ? Object.keys(raw.tiers) : []

  // a cluster limit without a Redis to share it through would silently count per proxy: the very failure it is for
  if (!isObj(raw.redis)) {
    for (const [name, l] of limits) {
      if (l.scope === 'cluster') issues.push({ path: ['limits', name, 'scope'], message: 'scope: cluster needs a redis section (url, sentinel or cluster) to share the bucket through' })
    }
    for (const [name, b] of budgets) {
      if (b.scope === 'cluster') issues.push({ path: ['budgets', name, 'scope'], message: 'scope: cluster needs a redis section (url, sentinel or cluster) to share the budget through' })
    }
  }

  const seenRoutes = new Map<string, number>()
  list(raw.routes).forEach((r, i) => {
    if (!isObj(r)) return
    if (typeof r.upstream === 'string' && !upstreams.includes(r.upstream)) {
      issues.push({ path: ['routes', i, 'upstream'], message: `unknown upstream "${r.upstream}"${didYouMean(r.upstream, upstreams)}` })
    }
    list(r.split).forEach((e, j) => {
      if (isObj(e) && typeof e.upstream === 'string' && !upstreams.includes(e.upstream)) {
        issues.push({ path: ['routes', i, 'split', j, 'upstream'], message: `unknown upstream "${e.upstream}"${didYouMean(e.upstream, upstreams)}` })
      }
    })
    if (isObj(r.mirror) && typeof r.mirror.upstream === 'string' && !upstreams.includes(r.mirror.upstream)) {
      issues.push({ path: ['routes', i, 'mirror', 'upstream'], message: `unknown upstream "${r.mirror.upstream}"${didYouMean(r.mirror.upstream, upstreams)}` })
    }
    crossSlot(raw.redis, limits, r, i, issues)
    if (isObj(r.models)) {
      for (const m of resolveModels(r.models, new Set(upstreams)).issues) {
        issues.push({ path: m.index < 0 ? ['routes', i, 'models', m.key] : ['routes', i, 'models', m.key, m.index], message: m.message })
      }
      // the cache keys and stores the upstream's bytes; a translated answer is not those
      if (r.cache !== undefined) issues.push({ path: ['routes', i, 'cache'], message: 'a route with models: cannot have a cache (not supported yet)' })
    }
    if (r.auth === 'jwt' && !isObj(raw.jwt)) {
      issues.push({ path: ['routes', i, 'auth'], message: 'auth: jwt needs a jwt section (issuer, audience, and jwks_url or keys)' })
    }
    const anonymous = r.auth === undefined || r.auth === 'none'
    list(r.limits).forEach((name, j) => {
      if (typeof name !== 'string') return
      const limit = limits.get(name)
      if (limit === undefined) {
        issues.push({ path: ['routes', i, 'limits', j], message: `unknown limit "${name}"${didYouMean(name, limits.keys())}` })
      } else if (anonymous && (limit.per === 'key' || limit.per === 'org')) {
        issues.push({
          path: ['routes', i, 'limits', j],
          message: `limit "${name}" is per ${limit.per as string}, but this route has auth: none (no key to scope by)`,
        })
      }
    })
    list(r.budgets).forEach((name, j) => {
      if (typeof name !== 'string') return
      const budget = budgets.get(name)
      if (budget === undefined) {
        issues.push({ path: ['routes', i, 'budgets', j], message: `unknown budget "${name}"${didYouMean(name, budgets.keys())}` })
      } else if (anonymous && (budget.per === 'key' || budget.per === 'org' || budget.per === 'tier')) {
        issues.push({
          path: ['routes', i, 'budgets', j],
          message: `budget "${name}" is per ${budget.per as string}, but this route has auth: none (no key to count by)`,
        })
      }
    })
    if (typeof r.path === 'string') {
      const id = `${typeof r.host === 'string' ? r.host.toLowerCase() : ''} ${r.path}`
      const first = seenRoutes.get(id)
      if (first === undefined) seenRoutes.set(id, i)
      else issues.push({ path: ['routes', i, 'path'], message: `duplicate route: same host and path as routes[${first}]` })
    }
  })

  const ids = new Map<string, number>()
  const material = new Map<string, number>()
  list(raw.keys).forEach((k, i) => {
    if (!isObj(k)) return
    if (typeof k.tier === 'string' && !tiers.includes(k.tier)) {
      issues.push({ path: ['keys', i, 'tier'], message: `unknown tier "${k.tier}"${didYouMean(k.tier, tiers)}` })
    }
    if (typeof k.id === 'string') {
      const first = ids.get(k.id)
      if (first === undefined) ids.set(k.id, i)
      else issues.push({ path: ['keys', i, 'id'], message: `duplicate key id "${k.id}" (also keys[${first}])` })
    }
    const sha = typeof k.key === 'string' ? createHash('sha256').update(k.key).digest('hex') : k.sha256
    if (typeof sha === 'string') {
      const first = material.get(sha)
      if (first === undefined) material.set(sha, i)
      else issues.push({ path: ['keys', i], message: `same key as keys[${first}]: a client key must identify one entry` })
    }
  })

  const fallbacks = new Map<string, string>()
  for (const [name, u] of entries(raw.upstreams)) {
    if (typeof u.fallback !== 'string') continue
    if (u.fallback === name) {
      issues.push({ path: ['upstreams', name, 'fallback'], message: 'an upstream cannot fall back to itself' })
    } else if (!upstreams.includes(u.fallback)) {
      issues.push({ path: ['upstreams', name, 'fallback'], message: `unknown upstream "${u.fallback}"${didYouMean(u.fallback, upstreams)}` })
    } else {
      fallbacks.set(name, u.fallback)
    }
  }
  // a fallback chain that loops would retry forever; report each loop once, at its first upstream in file order
  const reported = new Set<string>()
  for (const start of fallbacks.keys()) {
    const chain = [start]
    for (let next = fallbacks.get(start); next !== undefined; next = fallbacks.get(next)) {
      if (next === start) {
        if (!chain.some((n) => reported.has(n))) {
          issues.push({ path: ['upstreams', start, 'fallback'], message: `fallback loop: ${[...chain, start].join(' → ')}` })
        }
        chain.forEach((n) => reported.add(n))
        break
      }
      if (chain.includes(next)) break
      chain.push(next)
    }
  }
  return issues
}

// On a Redis Cluster one script call touches one slot: a route whose cluster limits hash to different slots would
// fail with CROSSSLOT on every request and be decided by on_error forever. Refuse it, with the fix.
function crossSlot(redis: unknown, limits: Map<string, Obj>, r: Obj, i: number, issues: RefIssue[]): void {
  if (!isObj(redis) || redis.cluster === undefined) return
  const prefix = typeof redis.key_prefix === 'string' ? redis.key_prefix : 'leaky:'
  const names = list(r.limits).filter((n): n is string => typeof n === 'string' && limits.get(n)?.scope === 'cluster')
  if (names.length < 2) return
  const slots = new Set(names.map((n) => keySlot(limitKeyPrefix(prefix, n))))
  if (slots.size < 2) return
  issues.push({
    path: ['routes', i, 'limits'],
    message: `cluster limits ${names.map((n) => `"${n}"`).join(', ')} hash to different Redis Cluster slots, so one request cannot charge them together (CROSSSLOT); put a hash tag in redis.key_prefix, e.g. "leaky:{rl}:", to keep every bucket in one slot`,
  })
}

