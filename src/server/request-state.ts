// Everything one request carries through the pipeline. Every field is assigned in the constructor so V8 keeps a
// single shape for all requests (undici's parser does the same); stages read and write fields, never add them.
import type { ClusterBudgetCharge } from '../spend/reconcile.js'
import type { HttpResponse } from 'uWebSockets.js'
import type { Dispatcher } from 'undici'
type DispatchController = Dispatcher.DispatchController
import type { ErrorCode, ErrorShape } from '../errors.js'
import type { WorkerPlan, CompiledRoute } from './plan.js'
import type { Upstream } from '../upstream/upstream.js'
import type { ApiShape } from '../llm/prompt.js'
import type { UsageMeter } from '../llm/usage.js'
import type { LazyPrompt } from '../llm/estimate.js'
import type { RedisCharges } from '../limiter/redis.js'
import type { ClusterLimiter } from '../limiter/cluster.js'
import type { StreamingBody } from './body.js'
import type { CacheCall } from '../cache/call.js'
import type { TraceRecord } from '../tracing/record.js'
import type { ModelCall } from '../translate/call.js'

/** What a stage tells the pipeline: go on, or the stage has answered (or will answer) the client itself. */
export const enum Next {
  CONTINUE = 0,
  REPLIED = 1,
  PENDING = 2,
}

export class RequestState {
  readonly res: HttpResponse
  /** the plan this request started with: a reload mid-request never changes it (Envoy's used_config_) */
  readonly plan: WorkerPlan
  readonly startMs: number
  method = ''
  url = ''
  query = ''
  host = ''
  /** request headers as a flat [name, value, ...] list, names lower-case, hop-by-hop already removed */
  headers: string[] = []
  contentLength = -1
  chunked = false
  clientIp = ''
  forwardedFor = ''
  requestId = ''
  traceparent = ''
  traceId = ''
  /** this hop's span id (the SERVER span), and the client's span id from its traceparent ('' when we started the trace) */
  spanId = ''
  parentSpanId = ''
  /** the client's tracestate (tracing on only) */
  traceState = ''
  /** head sampling said yes (src/tracing/sampler.ts) */
  sampled = false
  /** tracing's notes: set when sampled, or at a failed attempt (a tail signal); null otherwise */
  trace: TraceRecord | null = null
  /** when the current upstream attempt was sent (tracing on only) */
  attemptAt = 0
  route: CompiledRoute | null = null
  upstream: Upstream | null = null
  upstreamPath = ''
  target = 0
  /** the collected request body for routes that read it (LLM routes); null when the body streams through */
  body: Buffer | null = null
  bodyParts: Buffer[] | null = null
  bytesIn = 0
  bytesOut = 0
  status = 0
  ttfbMs = -1
  /** the client went away (uWS onAborted fired): res must not be touched any more */
  aborted = false
  /** the response to the client is complete (ended, closed or replied) */
  finished = false
  /** status line and headers have been written to the client */
  headersSent = false
  errorCode: ErrorCode | null = null
  /** the provider error shape of the route (OpenAI until a route says otherwise) */
  errorShape: ErrorShape = 'openai'
  errorDetail = ''
  controller: DispatchController | null = null
  /** headers the limit stage adds to the response (rate-limit state), [name, value, ...] */
  responseHeaders: string[] | null = null
  /** stage-owned per-request state (identity, estimate, limiter decision, usage meter) */
  keyId = ''
  org = ''
  /** the key's tier name ('' none): the subject of per: tier budgets */
  tier = ''
  scale = 1
  /** identify is verifying a bearer JWT (async): the body is read meanwhile, the pipeline resumes when both are done */
  identifying = false
  /** models a runtime key is limited to (null: any) */
  keyModels: ReadonlySet<string> | null = null
  /** the LLM API the request speaks (set by estimate on LLM routes) */
  shape: ApiShape | null = null
  /** estimated tokens (prompt + requested max output) pre-charged on token limits */
  costTokens = 0
  /** what the response cost at the plan's prices, pico-USD; -1: unknown (no price, or no usage) */
  costPico = -1
  promptTokens = 0
  /** prompt_estimate: bytes — promptTokens is a bound; this counts it exactly when needed (null: it is exact) */
  lazyPrompt: LazyPrompt | null = null
  model = ''
  /** the proxy added stream_options.include_usage: the meter strips the extra usage chunk */
  stripUsage = false
  /** the most the request can cost (pico-USD), pre-charged on the route's budgets */
  budgetPico = 0
  /** the budgets hold that pre-charge: account (or a Redis denial) reconciles it, once */
  budgetCharged = false
  /** the `scope: cluster` budgets charged (Redis, or on_error local), for the reconcile; null: none charged */
  clusterBudget: ClusterBudgetCharge | null = null
  /** the limit stage charged the buckets: account reconciles the token estimate */
  charged = false
  /** the `scope: cluster` charges and who decided them (null: the route has none) */
  cluster: RedisCharges | null = null
  clusterBy: ClusterLimiter | null = null
  /** a body taken from uWS while the limit stage waited for Redis; forward sends it */
  streamBody: StreamingBody | null = null
  /** name of the limit that denied the request, for logs and metrics */
  limitDenied = ''
  /** reads token usage from the response on its way to the client (LLM routes, 2xx) */
  meter: UsageMeter | null = null
  inflightTaken = false
  /** holds places on its route's and upstream's bulkheads (src/traffic/bulkhead.ts); account gives them back */
  gated = false
  /** the upstream whose bulkhead and retry budget count it: the one chosen for it (split side, model), not a fallback */
  gateUpstream: Upstream | null = null
  /** counts among its upstream's retries in flight (the retry budget); account stops counting it */
  retrying = false
  /** upstream attempts sent (retries and fallback hops included); forward sets it */
  attempts = 0
  /** account has run: it runs exactly once whether the request ends, fails or is aborted */
  accounted = false
  /** the request's model routing and translation (routes with `models:`; null on others) */
  modelCall: ModelCall | null = null
  /** the request body as parsed by estimate (undefined: not parsed), for the cache key */
  json: unknown = undefined
  /** the request's exchange with the response cache (stages/cache.ts); null on routes without one */
  cache: CacheCall | null = null
  /** hit | miss | coalesced | stale | bypass, for the access line; '' on routes without a cache */
  cacheStatus = ''
  /** tokens an answer from the cache charges on token limits (cache.charge_tokens); -1: not from the cache */
  cacheTokens = -1

  constructor(res: HttpResponse, plan: WorkerPlan) {
    this.res = res
    this.plan = plan
    this.startMs = performance.now()
  }
}

/**
 * A bounded prompt (prompt_estimate: bytes) replaced by its exact count, before a denial stands: true when the
 * estimate changed (the caller charges again; the denied all-or-nothing charge took nothing). Counts once.
 */
export function recountPrompt(s: RequestState): boolean {
  const lp = s.lazyPrompt
  if (lp === null || lp.counted) return false
  const n = lp.tokens()
  s.costTokens += n - s.promptTokens
  s.promptTokens = n
  return true
}
