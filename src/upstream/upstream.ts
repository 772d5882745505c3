// One configured upstream, compiled: an undici Pool per target (keep-alive, bounded connections), the headers it
// injects pre-flattened, and round-robin target choice. Built once per plan; requests only pick and dispatch.
import { Pool } from 'undici'

export type Provider = 'openai' | 'gemini' | 'qwen' | 'none'

export interface UpstreamConfig {
  provider: Provider
  targets: string[]
  headers: Record<string, string>
  preserve_host: boolean
  pool: { connections: number }
  timeouts: { connect: number; first_byte: number; idle: number }
  default_max_tokens: number
}

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
  #next = 0

  constructor(name: string, cfg: UpstreamConfig, embeddedSocket: string | null) {
    this.name = name
    this.provider = cfg.provider
    this.preserveHost = cfg.preserve_host
    this.connectTimeout = cfg.timeouts.connect
    this.firstByteTimeout = cfg.timeouts.first_byte
    this.idleTimeout = cfg.timeouts.idle
    this.defaultMaxTokens = cfg.default_max_tokens
    this.injected = []
    let creds = false
    for (const [k, v] of Object.entries(cfg.headers)) {
      const name = k.toLowerCase()
      this.injected.push(name, v)
      if (CREDENTIAL_HEADERS.has(name)) creds = true
    }
    this.ownCredentials = creds
    this.targets = cfg.targets.map((t) => makeTarget(t, cfg, embeddedSocket))
  }

  pick(): number {
    const n = this.targets.length
    if (n === 1) return 0
    const i = this.#next
    this.#next = i + 1 === n ? 0 : i + 1
    return i
  }

  /** Let in-flight requests finish on the old pools, then close them (used when a reload replaces the plan). */
  async close(): Promise<void> {
    await Promise.allSettled(this.targets.map((t) => t.pool.close()))
  }

  destroy(): void {
    for (const t of this.targets) void t.pool.destroy().catch(() => {})
  }
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
  return { pool: new Pool(u.origin, opts), origin: u.origin, host: u.host, basePath }
}
