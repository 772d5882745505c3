// The immutable plan a worker serves with: the config compiled once (route table, upstream pools, limits, header
// policy). A reload compiles a new plan and swaps one reference between requests; a request keeps the plan it
// started with, and the old plan's pools close once their last request has finished.
import type { Config } from '../config/index.js'
import { Upstream, type Provider } from '../upstream/upstream.js'
import { compileRoutes, type RouteTable } from './stages/route.js'
import { compileTrust, type TrustPlan } from './stages/accept.js'
import { compileKeys, type KeyIdentity } from './stages/identify.js'
import { compileLimits, type LimitPlan } from './stages/limit.js'
import type { PathPolicy } from './path.js'
import { PriceTable } from '../spend/prices.js'
import { compileBudgets, type BudgetPlan } from '../spend/budgets.js'
import { compileCache, type CachePlan } from '../cache/plan.js'
import { compileJwt } from './stages/jwt.js'
import type { JwtVerifier } from '../auth/jwt.js'
import { compileTracing, type TracingPlan } from '../tracing/plan.js'
import type { CompiledModels } from '../translate/models.js'
import { ledgerFile } from '../ledger/file.js'
import type { RouteGate } from '../traffic/bulkhead.js'
import { compilePriorities, type PriorityPlan } from '../traffic/priority.js'
import type { SplitPlan } from '../traffic/split.js'
import type { MirrorPlan } from '../traffic/mirror.js'

export interface CompiledRoute {
  index: number
  path: string
  host: string
  upstream: Upstream
  stripPrefix: boolean
  auth: 'key' | 'none' | 'jwt'
  limits: string[]
  /** the subject of `per: route` limits: host + path, stable across reloads that keep the route */
  scope: string
  /** LLM route: the body is read whole (bounded by max_body) so the estimate can see the prompt */
  readsBody: boolean
  provider: Provider
  /** the route's `models:` table (null: none): the request's model picks the upstream (stages/model.ts) */
  models: CompiledModels<Upstream> | null
  /** the route's bulkhead (src/traffic/bulkhead.ts) */
  gate: RouteGate
  /** traffic split (src/traffic/split.ts); null: the route's upstream takes everything */
  split: SplitPlan | null
  /** shadow copies (src/traffic/mirror.ts); null: none */
  mirror: MirrorPlan | null
}

export interface WorkerPlan {
  version: number
  routes: RouteTable
  upstreams: Map<string, Upstream>
  maxBody: number
  maxHeader: number
  maxInflight: number
  trust: TrustPlan
  path: PathPolicy
  accessLog: boolean
  /** virtual keys by the hex SHA-256 of the key */
  keys: Map<string, KeyIdentity>
  /** scale of each tier, for runtime keys (whose tier is looked up per request, as keys come and go) */
  tierScales: Map<string, number>
  /** tier priorities for shedding under adaptive concurrency limits (src/traffic/priority.ts) */
  priorities: PriorityPlan
  limits: LimitPlan
  /** USD per token per (provider, model): the shipped table with the config's prices over it */
  prices: PriceTable
  /** the budgets each route charges (src/spend/budgets.ts) */
  budgets: BudgetPlan
  cache: CachePlan
  /** bearer JWT verification for `auth: jwt` routes (null: no jwt section) */
  jwt: JwtVerifier | null
  /** null: no tracing section (src/tracing/) */
  tracing: TracingPlan | null
  /** every finished request is summed into the usage ledger (src/ledger/) */
  ledger: boolean
}

export function compilePlan(config: Config, version: number, embeddedSocket: string | null): WorkerPlan {
  const upstreams = new Map<string, Upstream>()
  for (const [name, u] of Object.entries(config.upstreams)) upstreams.set(name, new Upstream(name, u, embeddedSocket))
  return {
    version,
    routes: compileRoutes(config.routes, upstreams),
    upstreams,
    maxBody: config.server.max_body,
    maxHeader: config.server.max_header,
    maxInflight: config.server.max_inflight,
    trust: compileTrust(config.server.trusted_proxies),
    path: { mergeSlashes: config.server.path.merge_slashes, keepEncodedSlashes: config.server.path.encoded_slashes === 'keep' },
    accessLog: config.log.access,
    keys: compileKeys(config.keys),
    priorities: compilePriorities(config.tiers, upstreams.values()),
    tierScales: new Map(Object.entries(config.tiers).map(([name, t]) => [name, t.scale])),
    // every tier's scale, not just the config keys': a JWT or a runtime key may carry any tier
    limits: compileLimits(config.limits, config.routes, [...new Set([...config.keys.map((k) => k.scale), ...Object.values(config.tiers).map((t) => t.scale)])]),
    prices: new PriceTable(config.prices),
    budgets: compileBudgets(config.budgets, config.routes, config.redis === undefined ? null : config.redis),
    cache: compileCache(config),
    jwt: compileJwt(config),
    tracing: compileTracing(config.tracing),
    ledger: ledgerFile(config) !== null,
  }
}

export async function closePlan(plan: WorkerPlan): Promise<void> {
  plan.jwt?.close()
  await Promise.allSettled([...plan.upstreams.values()].map((u) => u.close()))
}
