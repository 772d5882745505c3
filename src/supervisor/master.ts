// The master: the small, stable process systemd watches (`leaky start`). It serves no traffic. It runs one generation
// process at a time (two during an upgrade), restarts a generation that dies with its last bucket snapshot, backs
// off when they keep dying, and turns signals and control-socket commands into reload, upgrade and stop.
//
//   SIGHUP / `leaky reload`    the generation re-reads the config and applies it in place (no new process)
//   SIGUSR2 / `leaky upgrade`  a new generation from the code on disk joins the port, then the old one drains
//   SIGTERM / SIGINT / `leaky stop`   every generation drains (up to drain_timeout), the state file is written, exit 0
//
// Reloads and upgrades run one at a time, in arrival order.
import path from 'node:path'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { AuditLog } from '../audit/audit-log.js'
import { loadConfigFile, type Config } from '../config/index.js'
import { LeakyError, EXIT } from '../errors.js'
import { createLogger, type Logger } from '../observability/logger.js'
import { CrashBackoff } from './backoff.js'
import { ControlServer, type ControlRequest } from './control.js'
import { GenerationProcess } from './gen-process.js'
import { sdNotify } from './notify.js'
import { controlSocketPath, defaultPidFile, ensureRuntimeDir, removePidFile, takePidFile } from './pid-file.js'
import { PROTOCOL_VERSION, type GenerationStatus, type ReloadResult, type Snapshot, type SupervisorInfo } from './protocol.js'
import { MIGRATE_REQ, tcpMigrateReq } from './sysctl.js'
import { ConfigWatcher, watchKey } from './watch.js'
import { tlsFiles } from '../config/tls.js'

/** sha256 of the config file's bytes (for the audit log); "unreadable" when it cannot be read */
function configSha(file: string): string {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex')
  } catch {
    return 'unreadable'
  }
}

/** How long a generation may take to start (workers, stub, admin) before it counts as failed. */
const START_TIMEOUT_MS = 60_000
/** How long a generation must serve before its death no longer counts as part of a crash loop. */
const STABLE_MS = 30_000
/** After the drain deadline, how long the master waits for a generation to exit before killing it. */
const EXIT_GRACE_MS = 15_000

export interface MasterOptions {
  configFile: string
  config: Config
  version: string
  /** reload when the config file changes */
  watch: boolean
  /** allow the crash-worker control command (LEAKY_TEST_HOOKS=1) */
  testHooks: boolean
  env?: NodeJS.ProcessEnv
}

/** A failed `leaky start`: the message (and config errors) the CLI prints on stderr. */
export class StartError extends Error {
  readonly errors: string[]
  constructor(message: string, errors: string[]) {
    super(message)
    this.errors = errors
  }
}

export type ReloadReply = ReloadResult & { generation: number | null }
export type UpgradeReply =
  | { ok: true; generation: number; previous: number; pid: number; admin_port: number }
  | { ok: false; reason: string; errors: string[] }

export interface GenerationEntry {
  role: 'current' | 'starting' | 'draining'
  number: number
  pid: number
  /** null when the generation did not answer in time */
  status: GenerationStatus | null
}

export interface MasterStatus {
  /** listen: the address generations serve on, with the port they got when the config says :0 */
  master: { pid: number; version: string; started_at_ms: number; uptime_ms: number; config_file: string; pid_file: string; listen: string; protocol: number }
  supervisor: SupervisorInfo
  /** set while no generation serves: the next restart is due in this many ms */
  restart_in_ms: number | null
  tcp_migrate_req: 0 | 1 | null
  /** when the master's latest copy of the serving generation's buckets was taken (ms since the epoch) */
  last_snapshot_ms: number | null
  generations: GenerationEntry[]
}

export class Master {
  readonly opts: MasterOptions
  readonly logger: Logger
  readonly flush: () => void
  readonly pidFile: string
  readonly startedAt = Date.now()
  config: Config
  current: GenerationProcess | null = null
  /** a generation being started by an upgrade, not yet serving */
  pending: GenerationProcess | null = null
  readonly draining = new Set<GenerationProcess>()
  readonly backoff = new CrashBackoff(STABLE_MS)
  reloadsOk = 0
  reloadsFailed = 0
  upgradesOk = 0
  upgradesFailed = 0
  #nextGeneration = 1
  /** the port generations serve on; kept so a restart joins the same one even when the config says :0 */
  #port: number | null = null
  #lastSnapshot: Snapshot | null = null
  /** when the service began to serve without a gap (SupervisorInfo.serving_since_ms); 0 until it first does */
  #servingSince = 0
  #op: Promise<unknown> = Promise.resolve()
  #restartTimer: NodeJS.Timeout | null = null
  #restartAt = 0
  #stableTimer: NodeJS.Timeout | null = null
  #stopping = false
  #control: ControlServer | null = null
  #watcher: ConfigWatcher | null = null
  readonly #env: NodeJS.ProcessEnv
  /** reloads and upgrades, with the config file's sha256 before and after */
  readonly audit: AuditLog
  #configSha: string

  constructor(opts: MasterOptions) {
    this.opts = opts
    this.config = opts.config
    const made = createLogger({ level: opts.config.log.level, bindings: { role: 'master' } })
    this.logger = made.logger
    this.flush = made.flush
    const env = opts.env ?? process.env
    this.pidFile = opts.config.pid_file ?? defaultPidFile(opts.config.listen, env)
    // readiness is the master's to report; a generation has nothing to say to systemd
    this.#env = { ...env }
    delete this.#env.NOTIFY_SOCKET
    this.audit = new AuditLog(opts.config.audit.file, (err, file) => this.logger.error({ msg: 'audit log write failed', file, err: err.message }))
    this.#configSha = configSha(opts.configFile)
  }

  #auditConfig(event: 'reload' | 'upgrade', source: string, ok: boolean, extra: Record<string, unknown>): void {
    const before = this.#configSha
    const after = configSha(this.opts.configFile)
    if (ok) this.#configSha = after
    this.audit.write({ event, source, result: ok ? 'ok' : 'failed', config_sha256_before: before, config_sha256_after: after, ...extra })
  }

  info(): SupervisorInfo {
    const wait = this.#restartTimer === null ? 0 : Math.max(0, this.#restartAt - Date.now())
    return {
      master_pid: process.pid,
      restarts: this.backoff.restarts,
      consecutive_crashes: this.backoff.consecutive,
      crash_loop: this.backoff.crashLoop,
      backoff_ms: wait,
      reloads_ok: this.reloadsOk,
      reloads_failed: this.reloadsFailed,
      upgrades_ok: this.upgradesOk,
      upgrades_failed: this.upgradesFailed,
      ...(this.#servingSince > 0 ? { serving_since_ms: this.#servingSince } : {}),
    }
  }

  /** Write the pid file, open the control socket, start generation 1 and wait until it serves. */
  async start(): Promise<void> {
    try {
      if (this.opts.config.pid_file === undefined) ensureRuntimeDir(path.dirname(this.pidFile), this.opts.env ?? process.env)
      takePidFile(this.pidFile)
    } catch (err) {
      if (err instanceof LeakyError) throw new StartError(err.message, [])
      throw new StartError(`cannot write the pid file ${this.pidFile}: ${(err as Error).message} (set pid_file, or LEAKY_RUNTIME_DIR)`, [])
    }
    // whatever ends this process from here on (a throw, process.exit), the pid file and socket go with it
    process.once('exit', () => this.#cleanup())
    const sock = controlSocketPath(this.pidFile, process.pid)
    this.#control = new ControlServer(sock, (req) => this.#command(req))
    try {
      await this.#control.listen()
    } catch (err) {
      this.#control = null
      this.logger.warn({ msg: 'control socket unavailable: leaky reload/upgrade/status will not answer (signals still work)', socket: sock, err: (err as Error).message })
    }
    if (tcpMigrateReq() === 0) {
      this.logger.warn({
        msg: `${MIGRATE_REQ} is 0: an upgrade resets connections still in the old generation's accept queues; install systemd/99-leaky.conf (sysctl net.ipv4.tcp_migrate_req=1)`,
      })
    }
    // handlers first: a signal's default action would kill the master during start-up (SIGHUP, SIGUSR2 terminate)
    process.on('SIGHUP', () => void this.reload('SIGHUP'))
    process.on('SIGUSR2', () => void this.upgrade('SIGUSR2'))
    process.on('SIGTERM', () => void this.stop('SIGTERM'))
    process.on('SIGINT', () => void this.stop('SIGINT'))
    // logrotate's postrotate: every process holding the audit log opens it anew
    process.on('SIGUSR1', () => {
      this.audit.reopen()
      for (const g of this.#all()) g.send({ type: 'reopen-audit' })
    })
    const g = this.#spawn(null, null, false)
    this.pending = g
    const r = await g.ready(START_TIMEOUT_MS)
    this.pending = null
    if (this.#stopping) return
    if (!r.ok) {
      g.kill()
      this.#cleanup()
      throw new StartError(r.message, r.errors)
    }
    this.#adopt(g)
    this.#syncWatch()
    this.logger.info({
      msg: 'ready',
      port: g.port,
      admin_port: g.adminPort,
      workers: g.workers,
      config: this.opts.configFile,
      version: this.opts.version,
      generation: g.number,
      generation_pid: g.pid,
      pid: process.pid,
      pid_file: this.pidFile,
    })
    void this.#notify(['READY=1', `STATUS=serving, generation ${g.number}`])
  }

  /** Watch the config file while `--watch` or `watch: true` says so (a reload may turn it on or off). */
  #syncWatch(): void {
    const want = this.opts.watch || this.config.watch
    const files = [this.opts.configFile, ...tlsFiles(this.config)]
    // a reload may have named other TLS files
    if (this.#watcher !== null && this.#watcher.files !== watchKey(files)) {
      this.#watcher.close()
      this.#watcher = null
    }
    if (want && this.#watcher === null) this.#watcher = new ConfigWatcher(files, () => void this.reload('watch'))
    if (!want && this.#watcher !== null) {
      this.#watcher.close()
      this.#watcher = null
    }
  }

  #spawn(snapshot: Snapshot | null, port: number | null, handoff: boolean): GenerationProcess {
    const g = new GenerationProcess(
      {
        type: 'init',
        protocol: PROTOCOL_VERSION,
        generation: this.#nextGeneration++,
        config_file: this.opts.configFile,
        port,
        handoff,
        snapshot,
        info: this.info(),
        test_hooks: this.opts.testHooks,
      },
      this.#env,
    )
    void g.exited.then((e) => this.#exited(g, e.code, e.signal))
    g.on('admin-command', (m: { id: number; cmd: 'reload' | 'drain'; source: string }) => void this.#adminCommand(g, m))
    return g
  }

  #adopt(g: GenerationProcess): void {
    // an upgrade takes over from a serving generation: the service has served all along; else it starts now
    if (this.current === null) this.#servingSince = g.startedAt
    this.current = g
    this.#port = g.port
    if (this.#stableTimer !== null) clearTimeout(this.#stableTimer)
    this.#stableTimer = setTimeout(() => {
      this.#stableTimer = null
      if (this.current === g && this.backoff.consecutive > 0) {
        this.backoff.stable()
        this.#pushInfo()
      }
    }, STABLE_MS)
    this.#stableTimer.unref()
    this.#pushInfo()
  }

  #pushInfo(): void {
    const info = this.info()
    for (const g of this.#all()) g.send({ type: 'info', info })
  }

  #all(): GenerationProcess[] {
    const out: GenerationProcess[] = []
    if (this.current !== null) out.push(this.current)
    if (this.pending !== null) out.push(this.pending)
    for (const g of this.draining) out.push(g)
    return out.filter((g) => g.alive)
  }

  #exited(g: GenerationProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (g.lastSnapshot !== null && (this.#lastSnapshot === null || g.lastSnapshot.taken_at_ms >= this.#lastSnapshot.taken_at_ms)) {
      this.#lastSnapshot = g.lastSnapshot
    }
    if (this.draining.delete(g)) {
      if (code !== 0) {
        this.logger.warn({ msg: 'a draining generation died; what it charged since the hand-over is lost', generation: g.number, code, signal })
      } else {
        this.logger.info({ msg: 'previous generation drained and exited', generation: g.number, cut: g.cut })
      }
      return
    }
    if (g !== this.current || this.#stopping || g.stopAsked) return
    this.current = null
    // an upgrade in flight takes over: its new generation becomes current if it gets ready
    if (this.pending !== null) {
      this.logger.error({ msg: 'generation exited unexpectedly during an upgrade', generation: g.number, code, signal })
      return
    }
    this.#scheduleRestart(g.readyAt === 0 ? 0 : Date.now() - g.readyAt, `generation ${g.number} exited (${signal ?? `code ${code}`})`)
  }

  #scheduleRestart(upMs: number, why: string): void {
    if (this.#stopping) return
    const delay = this.backoff.died(upMs)
    const crashLoop = this.backoff.crashLoop
    this.#restartAt = Date.now() + delay
    this.logger.error({
      msg: crashLoop ? 'crash loop: generation keeps dying; backing off' : 'generation died; restarting it',
      reason: why,
      restart_in_ms: delay,
      consecutive_crashes: this.backoff.consecutive,
      restarts: this.backoff.restarts,
      crash_loop: crashLoop,
    })
    void this.#notify([`STATUS=${crashLoop ? 'crash loop' : 'restarting'}: ${why}; next try in ${delay} ms`])
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null
      void this.#restart()
    }, delay)
  }

  async #restart(): Promise<void> {
    if (this.#stopping) return
    const g = this.#spawn(this.#lastSnapshot, this.#port, false)
    const r = await g.ready(START_TIMEOUT_MS)
    if (this.#stopping) {
      void g.drain('stop')
      return
    }
    if (!r.ok) {
      g.kill()
      this.logger.error({ msg: 'generation restart failed', generation: g.number, reason: r.message, errors: r.errors.length > 0 ? r.errors : undefined })
      return this.#scheduleRestart(0, r.message)
    }
    this.#adopt(g)
    this.logger.info({ msg: 'generation restarted', generation: g.number, pid: g.pid, port: g.port, admin_port: g.adminPort, restarts: this.backoff.restarts })
    void this.#notify([`STATUS=serving, generation ${g.number} (restarted)`])
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#op.then(fn, fn)
    this.#op = run.catch(() => undefined)
    return run
  }

  /** Re-read the config and apply it in place; invalid → nothing changes, errors returned and logged once. */
  reload(source: string): Promise<ReloadReply> {
    return this.#serial(() => this.#reload(source))
  }

  async #reload(source: string): Promise<ReloadReply> {
    const g = this.current
    const none = (why: string): ReloadReply => ({ ok: false, errors: [why], applied: [], needs_upgrade: [], needs_restart: [], config_version: 0, generation: null })
    if (this.#stopping) return none('the proxy is stopping')
    if (g === null) return none('no generation is serving right now (restarting)')
    const r = (await g.reload()) ?? { ...none(`generation ${g.number} did not answer the reload`) }
    if (r.ok) {
      this.reloadsOk++
      // the master keeps its own view for drain_timeout and log level; pid_file stays as started
      const mine = loadConfigFile(this.opts.configFile)
      if (mine.ok) {
        this.config = mine.config
        if (mine.config.audit.file !== this.audit.file) this.audit.reopen(mine.config.audit.file)
        this.logger.level = mine.config.log.level
        this.#syncWatch()
      }
      this.logger.info({ msg: 'reloaded', source, generation: g.number, config_version: r.config_version, applied: r.applied })
      if (r.needs_upgrade.length > 0) {
        this.logger.warn({ msg: 'reload: these changes take effect only after `leaky upgrade`', source, settings: r.needs_upgrade })
      }
      if (r.needs_restart.length > 0) {
        this.logger.warn({ msg: 'reload: these changes take effect only after a restart of the service', source, settings: r.needs_restart })
      }
    } else {
      this.reloadsFailed++
      this.logger.error({ msg: 'reload failed: config invalid, old config stays in force', source, errors: r.errors })
    }
    this.#auditConfig('reload', source, r.ok, { generation: g.number, config_version: r.config_version, applied: r.applied, errors: r.errors.length > 0 ? r.errors.length : undefined })
    this.#pushInfo()
    return { ...r, generation: g.number }
  }

  /** Start a generation from the code on disk, hand it the buckets, switch to it, drain the old one. */
  upgrade(source: string): Promise<UpgradeReply> {
    return this.#serial(() => this.#upgrade(source))
  }

  async #upgrade(source: string): Promise<UpgradeReply> {
    if (this.#stopping) return { ok: false, reason: 'the proxy is stopping', errors: [] }
    if (this.current === null) return { ok: false, reason: 'no generation is serving right now (restarting)', errors: [] }
    const g = this.#spawn(null, this.current.port, true)
    this.pending = g
    this.logger.info({ msg: 'upgrade: starting a new generation', source, generation: g.number, pid: g.pid, previous: this.current.number })
    let r = await g.prepared(START_TIMEOUT_MS)
    // the old generation's buckets are taken only now, when the new one is a moment from listening, so the
    // charges the new one does not know of are those of the last instant (and they follow as deltas)
    const old = this.current
    if (r.ok && old !== null && !this.#stopping) {
      // no answer (the old generation is stuck or just died): its last periodic copy is the best there is
      const snap = (await old.snapshot(true)) ?? old.lastSnapshot
      g.send({ type: 'handoff', snapshot: snap })
      r = await g.ready(START_TIMEOUT_MS)
    }
    this.pending = null
    if (!r.ok || this.#stopping || old === null) {
      const reason = !r.ok ? r.message : this.#stopping ? 'the proxy is stopping' : 'the running generation died'
      const errors = r.ok ? [] : r.errors
      this.upgradesFailed++
      this.logger.error({ msg: 'upgrade failed; the running generation keeps serving', source, generation: g.number, reason, errors: errors.length > 0 ? errors : undefined })
      void this.#discard(g)
      if (this.current === null && !this.#stopping) this.#scheduleRestart(0, 'the serving generation died during a failed upgrade')
      this.#auditConfig('upgrade', source, false, { generation: g.number, reason })
      this.#pushInfo()
      return { ok: false, reason, errors }
    }
    this.#adopt(g)
    if (old.alive) {
      this.draining.add(old)
      old.on('delta', (base: Snapshot, final: Snapshot) => this.#merge(old, base, final))
      const released = new Promise<void>((resolve) => {
        old.once('admin-released', resolve)
        void old.exited.then(() => resolve())
      })
      void old.drain('handoff')
      await released
    }
    const a = await g.promote()
    if (a === null || a.error !== null) {
      this.logger.error({ msg: 'upgrade: the new generation could not bind the admin listener', generation: g.number, err: a?.error ?? 'no answer' })
    } else {
      g.adminPort = a.port
    }
    this.upgradesOk++
    this.#auditConfig('upgrade', source, true, { generation: g.number, previous: old.number, version: this.opts.version })
    this.#pushInfo()
    this.logger.info({ msg: 'upgraded', source, generation: g.number, previous: old.number, pid: g.pid, port: g.port, admin_port: g.adminPort })
    void this.#notify([`STATUS=serving, generation ${g.number} (upgraded)`])
    return { ok: true, generation: g.number, previous: old.number, pid: g.pid, admin_port: g.adminPort }
  }

  /** What a draining generation still charges goes to whichever generation serves now. */
  #merge(old: GenerationProcess, base: Snapshot, final: Snapshot): void {
    const target = this.current
    if (target === null || target === old || !target.alive) {
      this.logger.warn({ msg: 'no serving generation to take the charges of a draining one; they are lost', generation: old.number })
      return
    }
    target.send({ type: 'merge', base, final })
  }

  /** A generation that never took over: drain it quickly (it may have accepted connections), then kill it. */
  async #discard(g: GenerationProcess): Promise<void> {
    if (!g.alive) return
    const killer = setTimeout(() => g.kill(), 5_000)
    await g.drain('stop', 1_000)
    clearTimeout(killer)
  }

  /** Drain every generation (up to drain_timeout), log how many requests were cut, exit 0. */
  async stop(signal: string): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    if (this.#restartTimer !== null) clearTimeout(this.#restartTimer)
    this.#watcher?.close()
    this.logger.info({ msg: 'draining', signal, drain_timeout_ms: this.config.drain_timeout })
    void this.#notify(['STOPPING=1'])
    const gens = this.#all()
    const killer = setTimeout(() => {
      for (const g of gens) g.kill()
    }, this.config.drain_timeout + EXIT_GRACE_MS)
    killer.unref()
    const cuts = await Promise.all(gens.map((g) => (this.draining.has(g) ? g.exited.then(() => g.cut) : g.drain('stop'))))
    clearTimeout(killer)
    const cut = cuts.reduce((a, b) => a + b, 0)
    if (cut > 0) this.logger.warn({ msg: 'drain timeout: closed requests still in flight', cut })
    this.logger.info({ msg: 'stopped', cut })
    this.#cleanup()
    this.flush()
    process.exit(EXIT.OK)
  }

  #cleanup(): void {
    this.#control?.close()
    this.#control = null
    removePidFile(this.pidFile)
  }

  async status(): Promise<MasterStatus> {
    const entries: Array<[GenerationEntry['role'], GenerationProcess]> = []
    if (this.current !== null && this.current.alive) entries.push(['current', this.current])
    if (this.pending !== null && this.pending.alive) entries.push(['starting', this.pending])
    for (const g of this.draining) if (g.alive) entries.push(['draining', g])
    const statuses = await Promise.all(entries.map(([, g]) => g.status(2_000)))
    return {
      master: {
        pid: process.pid,
        version: this.opts.version,
        started_at_ms: this.startedAt,
        uptime_ms: Date.now() - this.startedAt,
        config_file: this.opts.configFile,
        pid_file: this.pidFile,
        listen: this.#port === null ? this.config.listen : `${this.config.listen.slice(0, this.config.listen.lastIndexOf(':'))}:${this.#port}`,
        protocol: PROTOCOL_VERSION,
      },
      supervisor: this.info(),
      restart_in_ms: this.#restartTimer === null ? null : Math.max(0, this.#restartAt - Date.now()),
      tcp_migrate_req: tcpMigrateReq(),
      last_snapshot_ms: this.current?.lastSnapshot?.taken_at_ms ?? null,
      generations: entries.map(([role, g], i) => ({ role, number: g.number, pid: g.pid, status: statuses[i] })),
    }
  }

  async #command(req: ControlRequest): Promise<unknown> {
    switch (req.cmd) {
      case 'status':
        return { ok: true, status: await this.status() }
      case 'reload':
        return this.reload('leaky reload')
      case 'upgrade':
        return this.upgrade('leaky upgrade')
      case 'stop':
        setImmediate(() => void this.stop('leaky stop'))
        return { ok: true, drain_timeout_ms: this.config.drain_timeout }
      case 'crash-worker':
        if (!this.opts.testHooks) return { ok: false, error: 'test hooks are off (LEAKY_TEST_HOOKS=1)' }
        if (this.current === null) return { ok: false, error: 'no generation is serving' }
        this.current.send({ type: 'crash-worker', index: req.index })
        return { ok: true }
      default:
        return { ok: false, error: `unknown command ${JSON.stringify((req as { cmd?: unknown }).cmd)}` }
    }
  }

  async #adminCommand(g: GenerationProcess, m: { id: number; cmd: 'reload' | 'drain'; source: string }): Promise<void> {
    let result: { ok: boolean; [k: string]: unknown }
    if (m.cmd === 'reload') {
      result = { ...(await this.reload(m.source)) }
    } else {
      result = { ok: true, drain_timeout_ms: this.config.drain_timeout }
      setImmediate(() => void this.stop(m.source))
    }
    if (g.alive) g.send({ type: 'admin-command-result', id: m.id, result })
  }

  async #notify(lines: string[]): Promise<void> {
    const r = await sdNotify(lines, this.opts.env ?? process.env)
    if (r.error !== null) this.logger.error({ msg: 'systemd notification failed', lines, err: r.error })
  }
}

