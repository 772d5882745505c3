// Active health checks: the generation's main thread sends `GET <base path><health.path>` to every target of the
// upstreams that have a `health` section, every `interval`, and writes the verdict into the shared target table
// (`healthy` passes in a row bring a target back, `unhealthy` failures in a row take it out). Workers only read the
// verdict when they choose a target. One checker per generation, so N workers do not send N checks; a reload
// re-plans the checks, keeping the verdict of targets that stay.
import { Pool } from 'undici'
import type { Logger } from '../observability/logger.js'
import type { TargetTable } from './target-table.js'
import { connectTls, type UpstreamTlsConfig } from '../upstream/tls.js'

export interface HealthConfig {
  path: string
  interval: number
  timeout: number
  healthy: number
  unhealthy: number
}

interface UpstreamLike {
  targets: string[]
  health?: HealthConfig
  tls?: UpstreamTlsConfig
}

class Check {
  readonly upstream: string
  readonly url: string
  readonly slot: number
  readonly cfg: HealthConfig
  readonly pool: Pool
  readonly path: string
  timer: NodeJS.Timeout | null = null
  running = false
  /** last outcome, for /status.json: '' before the first check */
  last = ''

  constructor(upstream: string, url: string, slot: number, cfg: HealthConfig, tls: UpstreamTlsConfig | undefined) {
    this.upstream = upstream
    this.url = url
    this.slot = slot
    this.cfg = cfg
    const u = new URL(url)
    const base = u.pathname === '/' ? '' : u.pathname.replace(/\/$/, '')
    this.path = base + cfg.path
    this.pool = new Pool(u.origin, {
      connections: 1,
      connect: u.protocol === 'https:' ? { timeout: cfg.timeout, ...connectTls(tls) } : { timeout: cfg.timeout },
      headersTimeout: cfg.timeout,
      bodyTimeout: cfg.timeout,
    })
  }
}

export class HealthChecker {
  readonly #table: TargetTable
  readonly #logger: Logger
  #checks: Check[] = []

  constructor(table: TargetTable, logger: Logger) {
    this.#table = table
    this.#logger = logger
  }

  /** (Re)plan the checks for a config: every check starts over; targets keep their verdict while they keep a check. */
  configure(upstreams: Record<string, UpstreamLike>): void {
    const old = this.#checks
    this.#checks = []
    const kept = new Set<number>()
    for (const [name, u] of Object.entries(upstreams)) {
      if (u.health === undefined) continue
      for (const url of u.targets) {
        // the embedded stub lives in this process and is always up
        if (url === 'embedded') continue
        const slot = this.#table.slot(name, url)
        if (slot < 0) continue
        kept.add(slot)
        const c = new Check(name, url, slot, u.health, u.tls)
        this.#checks.push(c)
        this.#schedule(c, 0)
      }
    }
    for (const c of old) {
      this.#stop(c)
      // no check says anything about this target any more: it must not stay down for a verdict nobody renews
      if (!kept.has(c.slot)) this.#table.clearCheck(c.slot)
    }
  }

  close(): void {
    for (const c of this.#checks) this.#stop(c)
    this.#checks = []
  }

  /** For /status.json: the last outcome of each checked target. */
  lastOutcome(upstream: string, url: string): string | null {
    for (const c of this.#checks) if (c.upstream === upstream && c.url === url) return c.last
    return null
  }

  #stop(c: Check): void {
    if (c.timer !== null) clearTimeout(c.timer)
    c.timer = null
    void c.pool.destroy().catch(() => {})
  }

  #schedule(c: Check, ms: number): void {
    c.timer = setTimeout(() => void this.#run(c), ms)
    c.timer.unref()
  }

  async #run(c: Check): Promise<void> {
    if (c.timer === null) return
    c.timer = null
    let ok = false
    let why: string
    // a target that accepts the connection and never answers fails after `timeout`, whatever undici's phase
    const signal = AbortSignal.timeout(c.cfg.timeout)
    try {
      const r = await c.pool.request({ path: c.path, method: 'GET', headers: { 'user-agent': 'leaky-tokens-health' }, signal })
      await r.body.dump()
      ok = r.statusCode >= 200 && r.statusCode < 300
      why = `status ${r.statusCode}`
    } catch (err) {
      why = signal.aborted ? `no answer in ${c.cfg.timeout} ms` : ((err as { code?: string }).code ?? (err as Error).message)
    }
    if (!this.#checks.includes(c)) return
    c.last = ok ? 'pass' : `fail: ${why}`
    const change = this.#table.check(c.slot, ok, c.cfg.healthy, c.cfg.unhealthy)
    if (change === false) this.#logger.warn({ msg: 'target unhealthy', upstream: c.upstream, target: c.url, reason: why })
    else if (change === true) this.#logger.info({ msg: 'target healthy', upstream: c.upstream, target: c.url })
    this.#schedule(c, c.cfg.interval)
  }
}
