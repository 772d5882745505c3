// Stage 2 — route: host + longest path prefix → route. The table is compiled once per plan: routes grouped by host
// (exact, lower-case, port ignored) and sorted longest prefix first, so matching is a short scan of startsWith.
import { RouteGate } from '../../traffic/bulkhead.js'
import { SplitPlan } from '../../traffic/split.js'
import type { Upstream } from '../../upstream/upstream.js'
import type { CompiledRoute } from '../plan.js'
import { Next, type RequestState } from '../request-state.js'
import { replyError } from '../reply.js'
import { compileModels } from '../../translate/models.js'
import type { RouteConfig } from '../../config/index.js'

export interface RouteTable {
  byHost: Map<string, CompiledRoute[]>
  any: CompiledRoute[]
}

export function compileRoutes(routes: RouteConfig[], upstreams: Map<string, Upstream>): RouteTable {
  const compiled: CompiledRoute[] = routes.map((r, index) => {
    const upstream = upstreams.get(r.upstream)
    if (!upstream) throw new Error(`routes[${index}].upstream: unknown upstream "${r.upstream}"`)
    return {
      index,
      path: r.path,
      host: r.host ? r.host.toLowerCase() : '',
      upstream,
      stripPrefix: r.strip_prefix,
      auth: r.auth,
      limits: r.limits,
      scope: (r.host ? r.host.toLowerCase() : '') + r.path,
      readsBody: upstream.provider !== 'none' || r.models !== undefined,
      provider: upstream.provider,
      models: r.models === undefined ? null : compileModels(r.models, upstreams),
      gate: new RouteGate((r.host ? r.host.toLowerCase() : '') + r.path, r.max_inflight ?? 0),
      split: r.split !== undefined || (r.upstream_override?.length ?? 0) > 0
        ? new SplitPlan({ split: r.split, sticky: r.sticky ?? 'key', upstream_override: r.upstream_override ?? [] }, upstream, upstreams)
        : null,
      mirror: r.mirror === undefined ? null : { upstream: upstreams.get(r.mirror.upstream)!, share: r.mirror.percent / 100 },
    }
  })
  const byLength = (a: CompiledRoute, b: CompiledRoute) => b.path.length - a.path.length || a.index - b.index
  const any = compiled.filter((r) => r.host === '').sort(byLength)
  const byHost = new Map<string, CompiledRoute[]>()
  for (const r of compiled) {
    if (r.host === '') continue
    let list = byHost.get(r.host)
    if (!list) byHost.set(r.host, (list = []))
    list.push(r)
  }
  // a host's own routes win; routes without a host still serve it as a fallback
  for (const [h, list] of byHost) byHost.set(h, list.sort(byLength).concat(any))
  return { byHost, any }
}

export function matchRoute(table: RouteTable, host: string, url: string): CompiledRoute | null {
  let list = table.any
  if (table.byHost.size > 0 && host !== '') {
    const colon = host.lastIndexOf(':')
    const bare = colon > 0 && host[0] !== '[' ? host.slice(0, colon) : host
    list = table.byHost.get(bare.toLowerCase()) ?? table.any
  }
  for (let i = 0; i < list.length; i++) if (url.startsWith(list[i].path)) return list[i]
  return null
}

export function route(s: RequestState): Next {
  const r = matchRoute(s.plan.routes, s.host, s.url)
  if (r === null) return replyError(s, 'LEAKY_NO_ROUTE')
  s.route = r
  s.upstream = r.upstream
  s.target = r.upstream.pick()
  const t = r.upstream.targets[s.target]
  let path = s.url
  if (r.stripPrefix) {
    path = s.url.slice(r.path.length)
    if (path.charCodeAt(0) !== 47 /* / */) path = '/' + path
  }
  s.upstreamPath = t.basePath + path
  // a models route speaks OpenAI to its clients whatever serves it
  if (r.models !== null) return Next.CONTINUE
  if (r.provider === 'gemini') s.errorShape = 'gemini'
  else if (r.provider === 'anthropic') s.errorShape = 'anthropic'
  else if (r.provider === 'qwen' && path.includes('/api/v1/services/')) s.errorShape = 'qwen-native'
  return Next.CONTINUE
}
