// The entry point of a generation process (forked by the master, never run by hand). It loads the config itself,
// with the code now on disk, so an upgrade also upgrades validation; builds the Generation; restores the bucket
// state it was given (or the state file); and then does what the master asks over IPC: reload, status, snapshot,
// promote, drain. Bucket state leaves this process three ways: a copy to the master every second (a generation
// killed with -9 restarts from it), the state file every STATE_WRITE_MS and at stop, and the final snapshot of a
// hand-over.
import { loadConfigFile, formatIssue } from '../config/index.js'
import { Generation } from '../server/generation.js'
import { createLogger, type Logger } from '../observability/logger.js'
import { PROTOCOL_VERSION, type FromGeneration, type GenerationInit, type GenerationStatus, type Snapshot, type ToGeneration } from './protocol.js'
import { fresher, mergeDelta, restoreSnapshot, sameBuckets, takeSnapshot } from './buckets.js'
import { loadStateFile, moveAside, writeStateFile } from './state-file.js'
import { planReload } from './reload.js'
import { exportTargets, importTargets } from '../traffic/handover.js'
import { EXIT } from '../errors.js'

/** How often the master gets a copy of the buckets: the most state a kill -9 can lose. */
export const SNAPSHOT_TICK_MS = 1_000
/** How often the state file is rewritten while serving (and always at stop). */
export const STATE_WRITE_MS = 10_000
/** While draining after a hand-over, how often the charges made since the last delta go to the next generation. */
export const DELTA_MS = 200
/**
 * After a hand-over, how long no request may have arrived before the old generation closes its idle keep-alive
 * connections: a client on a busy machine can take hundreds of milliseconds to send its next request, and one that
 * sends it as the connection closes loses it (bench/upgrade with busy CPUs saw it at 100 ms).
 */
export const HANDOFF_QUIET_MS = 1_000

let gen: Generation | null = null
let logger: Logger | null = null
let flush: () => void = () => {}
let init: GenerationInit | null = null
let stateOwner = false
let stopping = false
let readyAt = 0
let lastStateWrite: number | null = null
let tick: NodeJS.Timeout | null = null
let stateTimer: NodeJS.Timeout | null = null
/** after a hand-over snapshot: the snapshot the next delta is measured from */
let deltaBase: Snapshot | null = null
let onHandoff: ((s: Snapshot | null) => void) | null = null

/** Resolves once the message is handed to the channel, so an exit right after it does not lose it. */
function send(m: FromGeneration): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve()
    process.send!(m, undefined, undefined, () => resolve())
  })
}

async function exit(code: number): Promise<never> {
  flush()
  process.exit(code)
}

// The master owns the lifecycle: a terminal's Ctrl-C or systemd's SIGTERM to the whole control group reaches this
// process too, and must not stop it behind the master's back (the master drains it in order).
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR2'] as const) process.on(sig, () => undefined)

process.on('message', (m: ToGeneration) => {
  void handle(m).catch((err: Error) => {
    logger?.error({ msg: 'generation: message handling failed', type: m.type, err: err.message, stack: err.stack })
  })
})

// The master went away (killed -9): nobody would restart or stop us, so stop cleanly, keeping the buckets.
process.on('disconnect', () => void drain('stop', null))

async function handle(m: ToGeneration): Promise<void> {
  switch (m.type) {
    case 'init':
      return start(m)
    case 'reload':
      return reload(m.id)
    case 'status':
      return send({ type: 'status', id: m.id, status: await status() })
    case 'snapshot': {
      const snap = gen === null ? null : takeSnapshot(gen.buckets)
      if (m.handoff) deltaBase = snap
      if (m.handoff && snap !== null) snap.targets = exportTargets(gen!.targets, gen!.config.upstreams)
      return send({ type: 'snapshot', id: m.id, snapshot: snap })
    }
    case 'handoff':
      onHandoff?.(m.snapshot)
      return
    case 'promote':
      return promote(m.id)
    case 'drain':
      return drain(m.mode, m.timeout_ms)
    case 'merge':
      return merge(m.base, m.final)
    case 'info':
      if (gen !== null) gen.supervisor = { ...m.info }
      return
    case 'crash-worker':
      if (init?.test_hooks === true) gen?.crashWorker(m.index)
      return
    case 'admin-command-result':
      commands.get(m.id)?.(m.result)
      commands.delete(m.id)
      return
    case 'reopen-audit':
      gen?.audit.reopen()
      return
    default: {
      const never: never = m
      return never
    }
  }
}

/** admin API commands waiting for the master's answer, by id */
const commands = new Map<number, (r: { ok: boolean; [k: string]: unknown }) => void>()
let commandIds = 0

/** Reload and drain from the admin API are the master's to do (it serialises them with signals and the CLI). */
function askMaster(cmd: 'reload' | 'drain', source: string): Promise<{ ok: boolean; [k: string]: unknown }> {
  const id = ++commandIds
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      commands.delete(id)
      resolve({ ok: false, error: `the master did not answer the ${cmd} in time (an older master does not take admin commands: restart the service)` })
    }, 60_000)
    commands.set(id, (r) => {
      clearTimeout(timer)
      resolve(r)
    })
    void send({ type: 'admin-command', id, cmd, source })
  })
}

async function fail(message: string, errors: string[] = []): Promise<never> {
  await send({ type: 'failed', message, errors })
  return exit(EXIT.FAILED)
}

async function start(m: GenerationInit): Promise<void> {
  if (m.protocol !== PROTOCOL_VERSION) {
    return fail(`generation speaks supervisor protocol ${PROTOCOL_VERSION}, the master ${m.protocol}: restart the service to run the new master`)
  }
  init = m
  const r = loadConfigFile(m.config_file)
  if (!r.ok) {
    return fail(`${r.issues.length} error${r.issues.length === 1 ? '' : 's'} in ${m.config_file}`, r.issues.map(formatIssue))
  }
  const made = createLogger({ level: r.config.log.level, bindings: { gen: m.generation, role: 'main' } })
  logger = made.logger
  flush = made.flush
  let g: Generation
  try {
    g = new Generation(r.config, logger, m.generation, { port: m.port, admin: !m.handoff, listen: !m.handoff })
  } catch (err) {
    return fail((err as Error).message)
  }
  gen = g
  g.supervisor = { ...m.info }
  g.command = askMaster
  if (!m.handoff) await restoreBuckets(g, m)
  try {
    await g.start()
    if (m.handoff) {
      // everything slow (threads, modules, stub) is done: now take the old generation's buckets, as late as possible
      const handed = new Promise<Snapshot | null>((resolve) => (onHandoff = resolve))
      await send({ type: 'prepared' })
      const s = await handed
      if (s !== null) report(restoreSnapshot(g.buckets, s), 'handoff', s)
      if (s?.targets !== undefined) logger!.info({ msg: 'targets restored', restored: importTargets(g.targets, s.targets, g.config.upstreams) })
      await g.listen()
    }
  } catch (err) {
    await g.stop(0).catch(() => 0)
    return fail((err as Error).message)
  }
  readyAt = Date.now()
  stateOwner = !m.handoff
  tick = setInterval(sendTick, SNAPSHOT_TICK_MS)
  if (stateOwner) startStateWrites()
  await send({ type: 'ready', port: g.port, admin_port: g.adminPort, workers: g.workerCount, config_version: g.version })
}

function report(r: ReturnType<typeof restoreSnapshot>, source: string, s: Snapshot): boolean {
  if (r.ok) logger!.info({ msg: 'buckets restored', source, restored: r.restored, dropped: r.dropped, full: r.full, age_ms: Date.now() - s.taken_at_ms })
  else logger!.warn({ msg: 'bucket snapshot rejected; starting with empty buckets', source, reason: r.error })
  return r.ok
}

/** Before any worker serves: the master's snapshot or the state file, whichever is fresher. */
async function restoreBuckets(g: Generation, m: GenerationInit): Promise<void> {
  const file = g.config.state_file
  let fromFile: Snapshot | null = null
  if (file !== undefined) {
    const r = await loadStateFile(file)
    if (r.kind === 'loaded') fromFile = r.snapshot
    else if (r.kind === 'moved-aside') {
      logger!.warn({ msg: 'state file unusable, moved aside; starting with empty buckets', state_file: file, reason: r.reason, moved_to: r.aside })
    }
  }
  const s = fresher(m.snapshot, fromFile)
  if (s === null) return
  const source = s === m.snapshot ? 'last snapshot' : 'state file'
  const r = restoreSnapshot(g.buckets, s)
  if (r.ok || source !== 'state file') {
    report(r, source, s)
    return
  }
  const aside = moveAside(file!)
  logger!.warn({ msg: 'state file unusable, moved aside; starting with empty buckets', state_file: file, reason: r.error, moved_to: aside })
}

/** What this draining generation charged since the last delta, for the serving one. */
async function sendDelta(): Promise<void> {
  if (gen === null || deltaBase === null) return
  const now = takeSnapshot(gen.buckets)
  if (sameBuckets(deltaBase, now)) return
  const base = deltaBase
  deltaBase = now
  await send({ type: 'delta', base, final: now })
}

function sendTick(): void {
  if (gen === null || stopping) return
  send({ type: 'snapshot-tick', snapshot: takeSnapshot(gen.buckets) })
}

function startStateWrites(): void {
  if (gen?.config.state_file === undefined || stateTimer !== null) return
  stateTimer = setInterval(() => void writeState(), STATE_WRITE_MS)
  stateTimer.unref()
}

async function writeState(): Promise<void> {
  const file = gen?.config.state_file
  if (gen === null || file === undefined || !stateOwner) return
  try {
    await writeStateFile(file, takeSnapshot(gen.buckets))
    lastStateWrite = Date.now()
  } catch (err) {
    logger!.error({ msg: 'state file write failed', state_file: file, err: (err as Error).message })
  }
}

async function reload(id: number): Promise<void> {
  const g = gen!
  const file = init!.config_file
  const r = loadConfigFile(file)
  if (!r.ok) {
    return send({ type: 'reload-result', id, result: { ok: false, errors: r.issues.map(formatIssue), applied: [], needs_upgrade: [], needs_restart: [], config_version: g.version } })
  }
  const plan = planReload(g.config, r.config)
  try {
    // certificate files renewed on disk change no config text: say so, or the reload would read "changed: nothing"
    if ((await g.reload(plan.config)).tls && !plan.applied.includes('tls')) plan.applied.push('tls')
  } catch (err) {
    return send({ type: 'reload-result', id, result: { ok: false, errors: [(err as Error).message], applied: [], needs_upgrade: [], needs_restart: [], config_version: g.version } })
  }
  logger!.level = plan.config.log.level
  if (stateOwner) startStateWrites()
  send({
    type: 'reload-result',
    id,
    result: { ok: true, errors: [], applied: plan.applied, needs_upgrade: plan.needsUpgrade, needs_restart: plan.needsRestart, config_version: g.version },
  })
}

async function promote(id: number): Promise<void> {
  const g = gen!
  let error: string | null = null
  // the old generation has just closed its admin listener; its socket may take a moment to be released
  for (let attempt = 0; ; attempt++) {
    try {
      await g.listenAdmin()
      error = null
      break
    } catch (err) {
      error = (err as Error).message
      if (attempt >= 40) break
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  stateOwner = true
  startStateWrites()
  send({ type: 'admin', id, port: g.adminPort, error })
}

async function merge(base: Snapshot, final: Snapshot): Promise<void> {
  if (gen === null) return
  const r = mergeDelta(gen.buckets, base, final)
  if (r.ok) logger!.debug({ msg: 'merged charges of a draining generation', buckets: r.merged })
  else logger!.warn({ msg: 'could not merge charges of a draining generation', reason: r.error })
}

async function status(): Promise<GenerationStatus> {
  const g = gen!
  const occ = g.buckets.occupancy(g.buckets.clock.now())
  return {
    generation: g.number,
    pid: process.pid,
    started_at_ms: g.startedAt,
    ready_at_ms: readyAt,
    state: stopping ? 'draining' : readyAt === 0 ? 'starting' : 'serving',
    port: g.port,
    admin_port: g.adminPort,
    workers: g.workerCount,
    workers_up: g.workersUp,
    worker_restarts: g.workerRestarts,
    inflight: Atomics.load(new Int32Array(g.shared.inflight), 0),
    requests: await g.requests(),
    config_version: g.version,
    buckets: { used: occ.live, capacity: g.buckets.capacity },
    state_file: g.config.state_file ?? null,
    last_state_write_ms: lastStateWrite,
  }
}

/**
 * Stop: drain, write the state file, exit. Hand-over: first give up the admin port (the next generation binds it)
 * and the state file, drain, then send the final snapshot so the next generation adds what was charged meanwhile.
 */
async function drain(mode: 'stop' | 'handoff', timeoutMs: number | null): Promise<void> {
  if (stopping) return
  stopping = true
  if (tick !== null) clearInterval(tick)
  if (stateTimer !== null) clearInterval(stateTimer)
  const g = gen
  if (g === null) return exit(EXIT.OK)
  let deltas: NodeJS.Timeout | null = null
  if (mode === 'handoff') {
    stateOwner = false
    await g.closeAdmin()
    await send({ type: 'admin-released' })
    deltas = setInterval(() => void sendDelta(), DELTA_MS)
  }
  logger!.info({ msg: 'generation draining', mode, drain_timeout_ms: timeoutMs ?? g.config.drain_timeout })
  const cut = await g.stop(timeoutMs ?? g.config.drain_timeout, mode === 'handoff' ? HANDOFF_QUIET_MS : 100)
  if (deltas !== null) clearInterval(deltas)
  if (mode === 'handoff') await sendDelta()
  else await writeState()
  await send({ type: 'stopped', cut })
  return exit(EXIT.OK)
}
