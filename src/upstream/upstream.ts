// One configured upstream, compiled: an undici Pool per target (keep-alive, bounded connections), the headers it
// injects pre-flattened, its balancer (src/traffic/balance.ts), its retry policy, breaker and fallback. Built once per plan;
// requests only pick and dispatch.
import { Pool } from 'undici'
import { RetryPolicy } from './retry.js'
import { Breaker } from './breaker.js'
import { metrics } from '../observability/metrics.js'
import { connectTls } from './tls.js'
import { Balancer, type OutlierConfig } from '../traffic/balance.js'
import type { HealthConfig } from '../traffic/health.js'
import { WaitQueue } from '../traffic/wait-queue.js'
import { QUEUE_HOOKS } from '../traffic/bulkhead.js'
import type { UpstreamConfig } from '../config/index.js'

/** Passive ejection when a config built in code has no `outlier` section: the schema's defaults */
export const DEFAULT_OUTLIER: OutlierConfig = { consecutive_failures: 5, base_ejection: 10_000, max_ejection: 300_000, max_ejected_percent: 50 }

export type Provider = 'openai' | 'gemini' | 'qwen' | 'anthropic' | 'none'

/** One `upstreams:` entry as the schema validates and normalises it. */
export type { UpstreamConfig }

/** Client headers that carry a credential: never forwarded when the upstream supplies its own. */
export const CREDENTIAL_HEADERS = new Set(['authorization', 'x-api-key', 'x-goog-api-key', 'api-key', 'proxy-authorization'])

export interface Target {
  pool: Pool
  /** origin as undici wants it, e.g. http://api.example.com:8080 */
  origin: string
  /** Host header value sent upstream (unless preserve_host) */
  host: string
  /** path prefix of the target URL ('' for none), prepended to the request path */
  basePath: string
}

export class Upstream {
  readonly name: string
  readonly provider: Provider
  readonly targets: Target[]
  /** [name, value, ...] injected on every request, names lower-case */
  readonly injected: string[]
  /** the upstream has its own credentials: client credential headers and ?key= are dropped */
  readonly ownCredentials: boolean
  readonly preserveHost: boolean
  readonly connectTimeout: number
  readonly firstByteTimeout: number
  readonly idleTimeout: number
  readonly defaultMaxTokens: number
  /** prompt_estimate: bytes — pre-charge the prompt's UTF-8 bytes (an upper bound) instead of its BPE count */
  readonly promptBytes: boolean
  /** always set: without a `retry` section, 0 extra attempts and the default conditions (they decide failover) */
  readonly retry: RetryPolicy
  readonly breaker: Breaker | null
  /** name of the upstream tried when this one fails or its breaker is open ('' for none); resolved in the
   *  request's own plan, where validation has ruled out loops */
  readonly fallback: string
  /** picks the target of each attempt (src/traffic/balance.ts) */
  readonly balancer: Balancer
  /** active health checks (run by the generation's main thread; null: none) */
  readonly health: HealthConfig | null
  /** bulkhead: requests of routes to this upstream in flight at once (0: no bound) */
  readonly maxInflight: number
  /** bulkhead wait queue, this worker's part (null: none, a full bulkhead answers 503 at once) */
  readonly queue: WaitQueue | null
  #next = 0

  constructor(name: string, cfg: UpstreamConfig, embeddedSocket: string | null) {
    this.name = name
    this.provider = cfg.provider
    this.preserveHost = cfg.preserve_host
    this.connectTimeout = cfg.timeouts.connect
    this.firstByteTimeout = cfg.timeouts.first_byte
    this.idleTimeout = cfg.timeouts.idle
    this.defaultMaxTokens = cfg.default_max_tokens
    this.promptBytes = cfg.prompt_estimate === 'bytes'
    this.injected = []
    let creds = false
    for (const [k, v] of Object.entries(cfg.headers)) {
      const name = k.toLowerCase()
      this.injected.push(name, v)
      if (CREDENTIAL_HEADERS.has(name)) creds = true
    }
    this.ownCredentials = creds
    this.targets = cfg.targets.map((t) => makeTarget(t, cfg, embeddedSocket))
    this.retry = new RetryPolicy(cfg.retry)
    this.breaker = breakerFor(name, cfg)
    this.fallback = cfg.fallback ?? ''
    this.health = cfg.health ?? null
    this.maxInflight = cfg.max_inflight ?? 0
    this.balancer = new Balancer(name, cfg.targets, cfg.weights, cfg.balance ?? 'p2c_least_inflight', cfg.outlier ?? DEFAULT_OUTLIER, cfg.adaptive)
    this.queue = cfg.queue === undefined || this.maxInflight === 0 ? null : new WaitQueue(cfg.queue, this.balancer.table, this.balancer.account, QUEUE_HOOKS)
  }

  /** A first guess at the target (for its base path) before forward picks the real one with the balancer. */
  pick(): number {
    const n = this.targets.length
    if (n === 1) return 0
    const i = this.#next
    this.#next = i + 1 === n ? 0 : i + 1
    return i
  }

  /** Let in-flight requests finish on the old pools, then close them (used when a reload replaces the plan). */
  async close(): Promise<void> {
    // requests still waiting in the bulkhead queue are sent on these pools once admitted (at most queue.timeout)
    if (this.queue !== null) await this.queue.drained()
    await Promise.allSettled(this.targets.map((t) => t.pool.close()))
  }

  destroy(): void {
    for (const t of this.targets) void t.pool.destroy().catch(() => {})
  }
}

// A breaker outlives a reload that keeps its upstream's targets and breaker settings, as Envoy keeps a limit's
// bucket: a reload must not close a breaker that is open for a reason still true. Module state, so per worker thread.
const breakers = new Map<string, { targets: string; breaker: Breaker }>()

function breakerFor(name: string, cfg: UpstreamConfig): Breaker | null {
  const old = breakers.get(name)
  const targets = cfg.targets.join(' ')
  if (cfg.breaker !== undefined && old !== undefined && old.targets === targets && old.breaker.sameAs(cfg.breaker)) return old.breaker
  // replaced or removed: the gauge must not go on saying open for a breaker nothing consults any more
  if (old !== undefined && old.breaker.open) metrics.breaker(name, false)
  if (cfg.breaker === undefined) {
    breakers.delete(name)
    return null
  }
  const breaker = new Breaker(cfg.breaker)
  breakers.set(name, { targets, breaker })
  return breaker
}

function makeTarget(spec: string, cfg: UpstreamConfig, embeddedSocket: string | null): Target {
  const opts = {
    connections: cfg.pool.connections,
    connect: { timeout: cfg.timeouts.connect },
    // upstream keep-alive: reuse sockets up to the server's hint, but never beyond 60 s of idleness
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: cfg.timeouts.first_byte,
    bodyTimeout: cfg.timeouts.idle,
    pipelining: 1,
  }
  if (spec === 'embedded') {
    if (!embeddedSocket) throw new Error('embedded stub is not running')
    return { pool: new Pool('http://embedded', { ...opts, socketPath: embeddedSocket }), origin: 'http://embedded', host: 'embedded', basePath: '' }
  }
  const u = new URL(spec)
  const basePath = u.pathname === '/' ? '' : u.pathname.replace(/\/$/, '')
  const connect = u.protocol === 'https:' ? { ...opts.connect, ...connectTls(cfg.tls) } : opts.connect
  return { pool: new Pool(u.origin, { ...opts, connect }), origin: u.origin, host: u.host, basePath }
}
