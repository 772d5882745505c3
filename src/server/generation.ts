// A generation: the main thread that owns config, SharedArrayBuffers, the embedded stub and the admin listener,
// and N worker threads serving traffic on one port (SO_REUSEPORT). Start, reload in place, drain and stop.
import { Worker } from 'node:worker_threads'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { Config } from '../config/index.js'
import type { Logger } from '../observability/logger.js'
import type { WorkerData, FromWorker, ToWorker } from './worker.js'
import { AdminServer } from '../admin/server.js'
import { StubServer } from '../stub/server.js'
import { LeakyError } from '../errors.js'
import { createShared, type SharedBuffers } from './shared.js'
import { MetricsHub } from '../observability/hub.js'
import { tableProbe } from '../observability/table-probe.js'
import { isLoopback } from '../admin/auth.js'
import { BucketTable } from '../limiter/table.js'
import { testClockFile } from '../limiter/clock.js'
import { BudgetAlerts } from '../spend/budget-alerts.js'
import { Webhooks } from '../spend/webhooks.js'
import { CacheOwner } from '../cache/owner.js'
import { registerCacheMetrics } from '../cache/metrics.js'
import { purgeHandler } from '../cache/purge.js'
import { describeCertificate } from '../tls/pem.js'
import { chooseUws, describeChoice, refusal } from './uws-choice.js'
import { applyUwsHeadLimit } from './head-limit.js'
import { AuditLog } from '../audit/audit-log.js'
import { KeyService, keyStoreFile } from '../identity/key-service.js'
import { KeySync } from '../identity/key-sync.js'
import type { AdminCommand } from '../admin/server.js'
import { Gauge } from 'prom-client'
import { SpanExport } from '../tracing/export.js'
import { registerTracingMetrics } from '../tracing/metrics.js'
import { LedgerWriter } from '../ledger/writer.js'
import { SpendPanelSource } from '../spend/panel.js'
import { registerLedgerMetrics } from '../ledger/metrics.js'
import { usageAnswer } from '../admin/usage.js'
import { TargetTable } from '../traffic/target-table.js'
import { HealthChecker } from '../traffic/health.js'
import { registerAdaptiveMetrics, registerProviderMetrics, registerTargetMetrics, reportAdaptiveShed, reportProviders, reportTargets } from '../traffic/report.js'

const WORKER_URL = new URL('./worker.js', import.meta.url)

export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':')
  let host = i <= 0 ? '0.0.0.0' : listen.slice(0, i)
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  return { host, port: Number(listen.slice(i + 1)) }
}

interface WorkerSlot {
  worker: Worker
  listening: boolean
  drained: Promise<number>
}

export interface GenerationOptions {
  /** bind this port instead of the configured one (an upgrade joins the running generation's port) */
  port?: number | null
  /** bind the admin listener in start(); false when an older generation still holds it (see listenAdmin) */
  admin?: boolean
  /** workers listen as soon as they start; false: they wait for listen() (an upgrade restores buckets first) */
  listen?: boolean
}

export class Generation {
  readonly number: number
  readonly logger: Logger
  config: Config
  version = 1
  port = 0
  adminPort = 0
  draining = false
  readonly startedAt = Date.now()
  readonly shared: SharedBuffers = createShared()
  /** the shared bucket table, created before any worker starts so a snapshot can be restored into it first */
  readonly buckets: BucketTable
  /** worker threads that died and were replaced */
  workerRestarts = 0
  /** shown on /ready: the master's counters (restarts, crash loop, reloads), set by the supervisor */
  supervisor: Record<string, unknown> | null = null
  readonly #workers: WorkerSlot[] = []
  readonly #opts: GenerationOptions
  #stub: StubServer | null = null
  #stubSocket: string | null = null
  /** listen_plain, port resolved: every worker (and a replacement) binds the same one */
  #plain: { host: string; port: number } | null = null
  #admin: AdminServer | null = null
  /** /metrics and /status: owns the SharedArrayBuffer the workers count into (shared.metrics) */
  readonly metrics: MetricsHub
  /** the response cache all workers share (README "Cache") */
  cache: CacheOwner | null = null
  readonly audit: AuditLog
  /** runtime keys: opened in start(), before the workers, so each starts with the current list */
  keys: KeyService | null = null
  #keyPoll: NodeJS.Timeout | null = null
  /** key_store.shared: redis */
  #keySync: KeySync | null = null
  /** reload and drain asked through the admin API go to the supervisor (set by it; absent: 503) */
  command: ((cmd: AdminCommand, source: string) => Promise<{ ok: boolean; [k: string]: unknown }>) | null = null
  /** the one span exporter of the generation: workers post finished spans to it */
  readonly tracing: SpanExport
  /** the usage ledger's one writer: workers post their summed rows to it (src/ledger/) */
  readonly ledger: LedgerWriter
  /** budget alerts (workers report, this thread logs and counts each once) and the budget gauges */
  readonly budgetAlerts: BudgetAlerts
  /** the status page's spend panel: the ledger's today and month, the budgets */
  readonly #spend: SpendPanelSource
  /** webhook deliveries (budget alerts), off the request path */
  readonly webhooks: Webhooks
  /** upstream targets' shared state (in flight, ejections, health); kept across reloads */
  readonly targets = TargetTable.create()
  /** active health checks of upstream targets (src/traffic/health.ts) */
  readonly health: HealthChecker

  constructor(config: Config, logger: Logger, number = 1, opts: GenerationOptions = {}) {
    this.config = config
    this.logger = logger
    this.number = number
    this.metrics = new MetricsHub(config, { workers: this.workerCount, generation: number, inflight: this.shared.inflight })
    this.shared.metrics = this.metrics.sab
    this.#opts = opts
    this.buckets = BucketTable.create(config.limits_table.capacity, config.limits_table.when_full)
    this.shared.buckets = this.buckets.sab
    this.shared.targets = this.targets.sab
    this.health = new HealthChecker(this.targets, logger)
    registerTargetMetrics(this.metrics.registry, () => reportTargets(this.targets, this.config.upstreams, this.health))
    registerProviderMetrics(this.metrics.registry, () => reportProviders(this.targets, this.config.upstreams))
    registerAdaptiveMetrics(this.metrics.registry, () => reportAdaptiveShed(this.targets, this.config.upstreams, this.config.tiers))
    this.metrics.setLimiterProbe(tableProbe(this.buckets, () => this.buckets.clock.now(), () => this.config))
    this.metrics.supervisor = () => this.supervisor
    this.#cacheFor(config)
    this.tracing = new SpanExport(logger, this.metrics.build.version)
    this.tracing.configure(config.tracing)
    registerTracingMetrics(this.metrics.registry, this.tracing.counters)
    this.ledger = new LedgerWriter(logger)
    registerLedgerMetrics(this.metrics.registry, this.ledger)
    this.webhooks = new Webhooks(this.metrics.registry, logger)
    this.webhooks.configure(config.webhooks)
    // usage anomalies go to the webhooks subscribed to them, like budget alerts
    this.ledger.onAnomaly = (a) => this.webhooks.send('anomaly', {
      subject: a.subject, id: a.id, metric: a.metric, minute: new Date(a.minute * 60_000).toISOString(),
      value: a.metric === 'cost' ? a.value / 1e6 : a.value, baseline: a.metric === 'cost' ? a.baseline / 1e6 : Math.round(a.baseline),
    })
    this.budgetAlerts = new BudgetAlerts(this.metrics.registry, logger, () => this.config, () => ({ t: this.buckets, now: this.buckets.clock.now() }),
      (m, threshold) => this.webhooks.send('budget', {
        budget: m.budget, per: m.per, subject: m.subject, threshold, spent_usd: Math.round(m.spent_usd * 1e6) / 1e6,
        limit_usd: m.limit_usd, window_start: new Date(m.window_start_ms).toISOString(),
      }))
    this.#spend = new SpendPanelSource(this.ledger, this.budgetAlerts, () => this.config.ledger.retention.minutes)
    if (testClockFile() !== '') {
      logger.warn({ msg: 'LEAKY_TEST_CLOCK is set: the limiter\'s time is read from a file and stands still (for tests only, never in production)', file: testClockFile() })
    }
    this.audit = new AuditLog(config.audit.file, (err, file) => this.logger.error({ msg: 'audit log write failed', file, err: err.message }))
    const gen = this
    new Gauge({
      name: 'leaky_runtime_keys_enabled',
      help: 'Runtime keys (leaky key create, /admin/keys) are served: 1, or 0 when the key store is off or could not be opened (see the log).',
      registers: [this.metrics.registry],
      collect(this: Gauge) {
        this.set(gen.keys?.store != null ? 1 : 0)
      },
    })
    new Gauge({
      name: 'leaky_runtime_keys',
      help: 'Runtime keys in the key store, by state.',
      labelNames: ['state'],
      registers: [this.metrics.registry],
      collect(this: Gauge) {
        const n = { active: 0, expired: 0, revoked: 0 }
        for (const k of gen.keys?.list() ?? []) if (k.source === 'runtime') n[k.state]++
        for (const [state, v] of Object.entries(n)) this.set({ state }, v)
      },
    })
  }

  // One owner for the generation's life, also without cached routes (it holds nothing then, and nothing asks it):
  // a reload that adds a cache finds every worker already connected.
  #cacheFor(config: Config): void {
    if (this.cache === null) {
      this.cache = new CacheOwner(config, this.logger)
      registerCacheMetrics(this.metrics.registry, () => this.cache)
    } else {
      this.cache.configure(config)
    }
  }

  /** Open the key store, and watch it for changes made by other processes (the CLI, another generation). */
  #openKeys(): void {
    const keys = KeyService.open(this.config, this.audit, true)
    this.keys = keys
    if (keys.disabled !== null) {
      // not configured is a choice, not a failure: an error line at every start of a plain config would be noise
      if (keyStoreFile(this.config) === null) this.logger.info({ msg: 'runtime keys off', reason: keys.disabled })
      else this.logger.error({ msg: 'runtime keys disabled; the config file\'s keys keep working', reason: keys.disabled })
      return
    }
    this.logger.info({ msg: 'key store open', file: keys.store!.file, runtime_keys: keys.rows.length })
    this.#keyPoll = setInterval(() => {
      try {
        if (keys.refresh()) this.keysChanged()
      } catch (err) {
        this.logger.error({ msg: 'key store read failed; workers keep the last key list', err: (err as Error).message })
      }
    }, this.config.key_store.poll)
    this.#keyPoll.unref()
    const redis = this.config.redis
    if (this.config.key_store.shared === 'redis' && redis?.url !== undefined) {
      this.#keySync = new KeySync(redis.url, redis.key_prefix, keys, () => this.pushKeys(), this.logger)
      this.#keySync.start()
    }
  }

  /** A key changed here (admin API, or the CLI seen by the poll): the workers, and the other proxies when shared. */
  keysChanged(): void {
    this.pushKeys()
    void this.#keySync?.push()
  }

  /** Every worker gets the whole key list (it replaces its table in one step). */
  pushKeys(): void {
    const rows = [...(this.keys?.rows ?? [])]
    for (const w of this.#workers) w.worker.postMessage({ type: 'keys', rows } satisfies ToWorker)
  }

  get workerCount(): number {
    const w = this.config.workers
    return w === 'auto' ? os.availableParallelism() : w
  }

  async start(): Promise<void> {
    const cfg = this.config
    // refused here, with the working pairs, before any thread is started; the workers' load has the last word
    const uws = chooseUws()
    if (uws.problem !== null) throw new LeakyError('LEAKY_UWS_UNAVAILABLE', refusal(uws))
    const headLimit = applyUwsHeadLimit(cfg.server.max_header)
    this.logger.info({
      msg: describeChoice(uws),
      uws: uws.version,
      uws_package: uws.build?.pkg,
      uws_forced: uws.forced,
      node: uws.runtime.node,
      abi: uws.runtime.abi,
      glibc: uws.runtime.glibc,
      uws_head_limit: headLimit,
    })
    if (Object.values(cfg.upstreams).some((u) => u.targets.includes('embedded'))) {
      // the embedded stub answers on a unix socket: in-process, no extra TCP port, real HTTP through undici. On Linux
      // in the abstract namespace (leading NUL): no file, so none is left behind however the process ends; a socket
      // file elsewhere is removed when the stub closes
      const name = `leaky-stub-${process.pid}-${this.number}.sock`
      this.#stubSocket = process.platform === 'linux' ? `\0${name}` : path.join(os.tmpdir(), name)
      this.#stub = new StubServer({ seed: cfg.stub?.seed ?? 1, ttftMs: cfg.stub?.ttft ?? 0, tokensPerSecond: cfg.stub?.tokens_per_second ?? 0 })
      await this.#stub.listenUnix(this.#stubSocket)
    }
    this.#openKeys()
    this.ledger.configure(cfg)
    const { host, port } = parseListen(cfg.listen)
    // uSockets does not set SO_REUSEPORT on a port-0 bind, so workers could not share a kernel-chosen port:
    // for port 0 (tests) pick a free port first, then every worker binds that one
    const fixed = this.#opts.port ?? port
    const chosen = fixed === 0 ? await freePort(host) : fixed
    // all workers start at once: a restart after a crash must be serving again within a second
    const now = this.#opts.listen !== false
    if (cfg.listen_plain !== undefined) {
      const p = parseListen(cfg.listen_plain)
      this.#plain = { host: p.host, port: p.port === 0 ? await freePort(p.host) : p.port }
    }
    const all: Promise<number>[] = []
    for (let i = 0; i < this.workerCount; i++) all.push(this.#spawn(i, host, chosen, now))
    const ports = await Promise.all(all)
    this.port = now ? ports[0] : chosen
    if (this.#opts.admin !== false) await this.listenAdmin()
    this.health.configure(cfg.upstreams)
    warnInsecure(cfg, this.logger)
    logCertificate(cfg, this.logger, 'TLS certificate loaded')
  }

  /** Bind the admin listener (an upgraded generation does it once the old one has released the port). */
  async listenAdmin(): Promise<void> {
    const cfg = this.config
    const admin = parseListen(cfg.admin.listen)
    this.#admin = new AdminServer({
      live: () => true,
      access: () => this.config.admin,
      keys: () => this.keys,
      audit: this.audit,
      command: (cmd, source) => (this.command === null ? Promise.resolve({ ok: false, error: 'no supervisor runs this generation' }) : this.command(cmd, source)),
      onKeysChanged: () => this.keysChanged(),
      metrics: () => this.metrics.metrics(),
      status: () => ({
        ...this.metrics.statusJson(), targets: reportTargets(this.targets, this.config.upstreams, this.health),
        providers: reportProviders(this.targets, this.config.upstreams), spend: this.#spend.get(),
      }),
      ready: () => ({
        ready: !this.draining && this.#workers.every((w) => w.listening),
        body: {
          generation: this.number,
          workers: this.#workers.length,
          workers_up: this.#workers.filter((w) => w.listening).length,
          upstreams: Object.keys(this.config.upstreams),
          config_version: this.version,
          supervisor: this.supervisor ?? undefined,
        },
      }),
      cachePurge: purgeHandler(() => this.cache),
      usage: (params) => usageAnswer(this.ledger, this.config.ledger.retention.minutes, params),
    }, cfg.admin.tls)
    try {
      this.adminPort = await this.#admin.listen(admin.host, admin.port)
      this.metrics.start()
      if (!cfg.admin.token && cfg.admin.tokens.length === 0 && !isLoopback(admin.host)) {
        this.logger.warn({ msg: 'admin listener is reachable beyond loopback and no admin token is set (admin.token, admin.tokens): /metrics, /status and /admin are open', listen: cfg.admin.listen })
      }
    } catch (err) {
      this.#admin = null
      throw new LeakyError('LEAKY_LISTEN', `admin listener could not listen on ${cfg.admin.listen}: ${(err as Error).message}`)
    }
  }

  /** Workers started with `listen: false` begin accepting connections. */
  async listen(): Promise<void> {
    await Promise.all(
      this.#workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            w.worker.once('listen-result', (m: FromWorker) =>
              m.type === 'listening' ? resolve() : reject(new LeakyError('LEAKY_LISTEN', m.type === 'listen-failed' ? m.message : 'listen failed')),
            )
            w.worker.postMessage({ type: 'listen' } satisfies ToWorker)
          }),
      ),
    )
  }

  /** Stop serving admin requests and free its port for the next generation. */
  async closeAdmin(): Promise<void> {
    const a = this.#admin
    this.#admin = null
    await a?.close()
  }

  get workersUp(): number {
    return this.#workers.filter((w) => w.listening).length
  }

  /** Requests each worker has started, summed (asks every worker; for status, not per request). */
  async requests(): Promise<number> {
    const counts = await Promise.all(
      this.#workers.map(
        (w) =>
          new Promise<number>((resolve) => {
            if (!w.listening) return resolve(0)
            const on = (m: FromWorker) => {
              if (m.type !== 'stats') return
              w.worker.off('stats-result', on)
              resolve(m.requests)
            }
            w.worker.on('stats-result', on)
            w.worker.postMessage({ type: 'stats' } satisfies ToWorker)
          }),
      ),
    )
    return counts.reduce((a, b) => a + b, 0)
  }

  /** Test hook: make worker `index` throw an uncaught error, as a bug would. */
  crashWorker(index: number): boolean {
    const w = this.#workers[index]
    if (w === undefined || !w.listening) return false
    w.worker.postMessage({ type: 'crash' } satisfies ToWorker)
    return true
  }

  #spawn(index: number, host: string, port: number, listenAtStart = true): Promise<number> {
    const data: WorkerData = {
      index,
      generation: this.number,
      config: this.config,
      version: this.version,
      host,
      port,
      plain: this.#plain,
      embeddedSocket: this.#stubSocket,
      shared: this.shared,
      listenAtStart,
      workers: this.workerCount,
      cachePort: this.cache === null ? null : this.cache.connect(),
      runtimeKeys: [...(this.keys?.rows ?? [])],
    }
    const worker = new Worker(WORKER_URL, { workerData: data, transferList: data.cachePort === null ? [] : [data.cachePort] })
    let onDrained: (cut: number) => void = () => {}
    const slot: WorkerSlot = { worker, listening: false, drained: new Promise<number>((r) => (onDrained = r)) }
    this.#workers[index] = slot
    return new Promise<number>((resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'started':
            return resolve(0)
          case 'listening':
            slot.listening = true
            worker.emit('listen-result', m)
            return resolve(m.port)
          case 'listen-failed':
            worker.emit('listen-result', m)
            return reject(new LeakyError('LEAKY_LISTEN', `${m.message} (port in use by a non-SO_REUSEPORT process, or not allowed)`))
          case 'drained':
            return onDrained(m.cut)
          case 'reloaded':
          case 'reload-failed':
            return void worker.emit('reload-result', m)
          case 'stats':
            return void worker.emit('stats-result', m)
          case 'spans':
            return this.tracing.take(m)
          case 'usage':
            return this.ledger.take(m)
          case 'budget-alert':
            return this.budgetAlerts.take(m)
        }
      })
      worker.on('error', (err) => {
        this.logger.error({ msg: 'worker failed', worker: index, err: err.message, stack: err.stack })
        reject(err)
      })
      worker.on('exit', (code) => {
        slot.listening = false
        onDrained(0)
        if (!this.draining) {
          this.workerRestarts++
          this.metrics.workerRestarted()
          this.logger.error({ msg: 'worker exited unexpectedly; replacing it', worker: index, code })
          void this.#spawn(index, host, this.port).catch((err) => this.logger.error({ msg: 'worker replacement failed', worker: index, err: err.message }))
        }
      })
    })
  }

  /**
   * Apply a validated config in place: every worker compiles it and swaps between requests. Returns whether the
   * proxy listener took new certificate files (they can change on disk while the config text stays the same).
   */
  async reload(config: Config): Promise<{ tls: boolean }> {
    const version = this.version + 1
    const results = this.#workers.map(
      (w) =>
        new Promise<FromWorker>((resolve) => {
          const on = (m: FromWorker) => {
            if ((m.type === 'reloaded' || m.type === 'reload-failed') && m.version === version) {
              w.worker.off('reload-result', on)
              resolve(m)
            }
          }
          w.worker.on('reload-result', on)
          w.worker.postMessage({ type: 'config', config, version } satisfies ToWorker)
        }),
    )
    const out = await Promise.all(results)
    const failed = out.find((m) => m.type === 'reload-failed')
    this.metrics.configure(config, version)
    this.metrics.reloaded(failed === undefined)
    if (failed === undefined) this.#cacheFor(config)
    this.tracing.configure(config.tracing)
    this.ledger.configure(config)
    this.webhooks.configure(config.webhooks)
    this.buckets.setWhenFull(config.limits_table.when_full)
    if (this.keys !== null) this.keys.config = config
    if (config.audit.file !== this.config.audit.file) this.audit.reopen(config.audit.file)
    this.config = config
    this.version = version
    if (failed === undefined) {
      this.health.configure(config.upstreams)
      warnInsecure(config, this.logger)
      try {
        const why = this.#admin?.setTls(config.admin.tls) ?? null
        if (why !== null) this.logger.warn({ msg: why })
      } catch (err) {
        this.logger.error({ msg: 'admin.tls: new certificates not applied; the running ones stay', err: (err as Error).message })
      }
    }
    if (failed && failed.type === 'reload-failed') throw new LeakyError('LEAKY_RELOAD', failed.message)
    const tls = out.some((m) => m.type === 'reloaded' && m.tls)
    if (tls) logCertificate(config, this.logger, 'TLS certificate reloaded')
    return { tls }
  }

  /**
   * Stop accepting, let in-flight requests finish up to drain_timeout, then stop. Returns how many were cut.
   * `quietMs`: idle keep-alive connections are closed once no request has arrived for that long (an upgrade's old
   * generation waits longer, so clients that are slow to send their next request still get Connection: close).
   */
  async stop(timeoutMs = this.config.drain_timeout, quietMs = 100): Promise<number> {
    this.draining = true
    for (const w of this.#workers) w.worker.postMessage({ type: 'drain', timeoutMs, quietMs } satisfies ToWorker)
    const cuts = await Promise.all(this.#workers.map((w) => w.drained))
    await Promise.all(this.#workers.map((w) => w.worker.terminate().catch(() => 0)))
    // every worker has drained and posted its last rows (they arrive before its 'drained'): the last flush has them all
    await this.ledger.close()
    this.webhooks.close()
    await this.tracing.shutdown()
    this.health.close()
    this.metrics.stop()
    this.cache?.close()
    await this.#admin?.close()
    await this.#stub?.close()
    if (this.#keyPoll !== null) clearInterval(this.#keyPoll)
    this.#keySync?.close()
    this.keys?.close()
    this.audit.close()
    return cuts.reduce((a, b) => a + b, 0)
  }
}

/** Which certificate the proxy listener serves, and until when (at warn level when it has less than 14 days left). */
function logCertificate(config: Config, logger: Logger, msg: string): void {
  if (config.tls === undefined) return
  const c = describeCertificate(config.tls.cert)
  if (c === null) return
  const daysLeft = Math.floor((c.notAfter - Date.now()) / 86_400_000)
  const line = { msg, cert: config.tls.cert, subject: c.subject, serial: c.serial, not_after: new Date(c.notAfter).toISOString(), days_left: daysLeft }
  // the same message either way (log queries match on it); the level says whether to act
  if (daysLeft < 14) logger.warn(line)
  else logger.info(line)
}

/** insecure_skip_verify is allowed only when written, and then said out loud at every start and reload. */
function warnInsecure(config: Config, logger: Logger): void {
  for (const [name, u] of Object.entries(config.upstreams)) {
    if (u.tls?.insecure_skip_verify !== true) continue
    logger.warn({ msg: 'upstream TLS certificates are NOT verified (tls.insecure_skip_verify: true): anyone on the path can impersonate it and read its credentials', upstream: name })
  }
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, host, () => {
      const p = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(p))
    })
  })
}
