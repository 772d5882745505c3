// The main thread's side of metrics, one per generation: creates the shared buffer the workers write, keeps the
// counters only the main thread sees (reloads, restarts), and answers /metrics (prom-client, collected at scrape
// time) and /status.json. Nothing here runs per request.
import { readFileSync } from 'node:fs'
import type { Config } from '../config/index.js'
import { createMetricsBuffer, openMetrics } from './buffer.js'
import { MetricsReader } from './reader.js'
import { SharedRegistry, registerLimiterMetrics, registerMetrics, type BuildInfo, type ExpositionSource, type LimiterProbe, type Ops } from './exposition.js'
import { StatusSampler } from './status.js'
import { carryWith } from './history.js'
import { chooseUws } from '../server/uws-choice.js'
import { OTHER } from './label-table.js'

/** At most this many keys marked metrics_label get their own key_id label; the rest count under "other". */
export const KEY_LABELS_MAX = 100

/** `metrics: { enabled }` in the config; on by default. */
export function metricsEnabled(config: Config): boolean {
  return config.metrics.enabled
}

export interface HubOptions {
  workers: number
  generation: number
  /** the generation's in-flight word (SharedBuffers.inflight) */
  inflight: SharedArrayBuffer
}

export class MetricsHub implements ExpositionSource {
  /** the buffer workers write (SharedBuffers.metrics); null when metrics are off */
  readonly sab: SharedArrayBuffer | null
  readonly reader: MetricsReader | null
  readonly registry = new SharedRegistry()
  readonly #ops: Ops
  /** the master's counters when a supervisor runs this generation (Generation.supervisor) */
  supervisor: (() => Record<string, unknown> | null) | null = null
  readonly build: BuildInfo = buildInfo()
  limiter: LimiterProbe | null = null
  readonly #inflight: Int32Array
  readonly #providers = new Map<string, string>()
  #keyLabels = new Set<string>()
  #upstreams: string[] = []
  #insecure: string[] = []
  readonly #status: StatusSampler
  readonly #startedAt = Date.now()
  #limiterMetrics = false

  constructor(config: Config, opts: HubOptions) {
    this.sab = metricsEnabled(config) ? createMetricsBuffer(opts.workers) : null
    this.reader = this.sab === null ? null : new MetricsReader(openMetrics(this.sab))
    this.#inflight = new Int32Array(opts.inflight)
    this.#ops = {
      generation: opts.generation, configVersion: 1, workers: opts.workers,
      reloadsOk: 0, reloadsFailed: 0, upgrades: 0, workerRestarts: 0, generationRestarts: 0,
    }
    this.configure(config, 1)
    registerMetrics(this.registry, this)
    this.#status = new StatusSampler({
      reader: this.reader,
      inflight: () => this.inflight(),
      providerOf: (u) => this.providerOf(u),
      upstreamNames: () => this.#upstreams,
      info: () => ({
        version: this.build.version,
        build: this.build,
        generation: this.ops.generation,
        config_version: this.ops.configVersion,
        workers: this.ops.workers,
        uptime_s: Math.round((Date.now() - this.#upSince()) / 1000),
      }),
    })
  }

  /**
   * Take a config (at start and after each reload): label values from config are interned first, so they keep
   * low slots and every worker finds them; providers and metrics_label marks are remembered for the exposition.
   */
  configure(config: Config, version: number): void {
    this.#ops.configVersion = version
    this.#upstreams = Object.keys(config.upstreams)
    this.#insecure = this.#upstreams.filter((n) => config.upstreams[n].tls?.insecure_skip_verify === true)
    for (const [name, u] of Object.entries(config.upstreams)) this.#providers.set(name, u.provider)
    const marked = new Set<string>()
    for (const k of config.keys) if (k.metrics_label && marked.size < KEY_LABELS_MAX) marked.add(k.id)
    this.#keyLabels = marked
    if (this.reader === null) return
    const v = this.reader.v
    v.routes.intern('none')
    v.upstreams.intern('none')
    for (const r of config.routes) v.routes.intern(r.path)
    for (const name of this.#upstreams) v.upstreams.intern(name)
    for (const name of Object.keys(config.limits)) v.limits.intern(name)
    for (const k of config.keys) v.keys.intern(k.id)
  }

  /**
   * The counters of operations. Under a supervisor its counts win: they include reloads whose config failed to
   * parse (the generation never sees those) and survive upgrades, as a counter should.
   */
  get ops(): Ops {
    const s = this.supervisor?.() ?? null
    if (s === null) return this.#ops
    const n = (k: string, d: number) => (typeof s[k] === 'number' ? (s[k] as number) : d)
    // the master's info arrives a moment after a reload has been applied here: never report less than this
    // generation has seen itself
    return {
      ...this.#ops,
      reloadsOk: Math.max(n('reloads_ok', 0), this.#ops.reloadsOk),
      reloadsFailed: Math.max(n('reloads_failed', 0), this.#ops.reloadsFailed),
      upgrades: n('upgrades_ok', this.#ops.upgrades),
      generationRestarts: n('restarts', this.#ops.generationRestarts),
    }
  }

  /** Count a reload (the CLI reports a config that failed to parse with reloaded(false) too). */
  reloaded(ok: boolean): void {
    if (ok) this.#ops.reloadsOk++
    else this.#ops.reloadsFailed++
  }

  workerRestarted(): void {
    this.#ops.workerRestarts++
  }

  /** Upgrades since the master started: the supervisor knows, a generation does not. */
  setUpgrades(n: number): void {
    this.#ops.upgrades = n
  }

  /**
   * Report the bucket table (and per-limit fill) from now on; see tableProbe for the adapter. The /status history
   * travels with that table's snapshots from then on (history.ts).
   */
  setLimiterProbe(probe: LimiterProbe | null): void {
    if (this.limiter === null && probe !== null && !this.#limiterMetrics) {
      registerLimiterMetrics(this.registry, this)
      this.#limiterMetrics = true
    }
    this.limiter = probe
    if (probe?.subject !== undefined) carryWith(probe.subject, this.#status)
  }

  // Uptime counts from when the service began to serve: under a supervisor that outlives upgrades (and restarts
  // only after a generation died), else from this generation's start.
  #upSince(): number {
    const since = this.supervisor?.()?.serving_since_ms
    return typeof since === 'number' && since > 0 ? since : this.#startedAt
  }

  inflight(): number {
    return Atomics.load(this.#inflight, 0)
  }

  providerOf(upstream: string): string {
    return this.#providers.get(upstream) ?? 'none'
  }

  insecureUpstreams(): readonly string[] {
    return this.#insecure
  }

  keyLabel(id: string): string {
    return this.#keyLabels.has(id) ? id : OTHER
  }

  /** The /metrics body (Prometheus text format 0.0.4). */
  async metrics(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }

  statusJson(): Record<string, unknown> {
    const body = this.#status.json()
    body.table = this.limiter?.table() ?? null
    return body
  }

  /** Sample for /status every second (unref'd). */
  start(): void {
    this.#status.start()
  }

  /** Take a status sample now (`now` in ms: tests step the clock). */
  sample(now?: number): void {
    this.#status.sample(now)
  }

  stop(): void {
    this.#status.stop()
  }
}

function buildInfo(): BuildInfo {
  let version = 'unknown'
  try {
    version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    // running from an unusual layout: build info says unknown rather than failing the start
  }
  const c = chooseUws()
  return { version, node: process.version, uws: c.version ?? 'unknown', uws_package: c.build?.pkg ?? 'none', glibc: c.runtime.glibc ?? 'none' }
}
