// `leaky reload | upgrade | stop | status`: find the running master (pid file or --pid), ask it over its control
// socket, print the answer. Without a control socket (another user's master, an old one) reload, upgrade and stop
// fall back to the signal, which works but cannot report a result.
import { existsSync, readFileSync } from 'node:fs'
import { loadConfigFile } from '../config/index.js'
import { LeakyError } from '../errors.js'
import { controlRequest } from './control.js'
import type { ReloadReply, UpgradeReply, MasterStatus } from './master.js'
import { alive, controlSocketPath, findControlSocket, pidFileCandidates, readPidFile } from './pid-file.js'
import { formatStatus } from './status-table.js'

export interface TargetOptions {
  pid?: string
  pidFile?: string
  config?: string
}

export interface MasterRef {
  pid: number
  socket: string | null
  pidFile: string | null
}

function pidFileFromConfig(file: string): string | undefined {
  const r = loadConfigFile(file)
  return r.ok ? r.config.pid_file : undefined
}

/**
 * A pid file can outlive its master and the pid be reused: never signal a process whose command line is not a
 * `leaky start` (when /proc cannot say, trust the pid file).
 */
export function looksLikeMaster(pid: number): boolean {
  let argv: string[]
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  } catch {
    return true
  }
  return argv.includes('start') && argv.some((a) => /leaky|cli\/main\.js$/.test(a))
}

/** The master to talk to; a LeakyError with a helpful message when there is none. */
export function findMaster(opts: TargetOptions, env: NodeJS.ProcessEnv = process.env): MasterRef {
  if (opts.pid !== undefined) {
    const pid = Number(opts.pid)
    if (!Number.isInteger(pid) || pid <= 0) throw new LeakyError('LEAKY_CLI', `--pid: not a pid: ${opts.pid}`)
    if (!alive(pid)) throw new LeakyError('LEAKY_CLI', `no process ${pid}`)
    if (!looksLikeMaster(pid)) throw new LeakyError('LEAKY_CLI', `process ${pid} is not a leaky master (\`leaky start\`)`)
    return { pid, socket: findControlSocket(pid, env), pidFile: null }
  }
  const cfg = opts.config ?? env.LEAKY_CONFIG
  const named = opts.pidFile ?? (cfg !== undefined ? pidFileFromConfig(cfg) : undefined)
  const pidFile = named ?? pidFileCandidates(env).find((f) => existsSync(f))
  if (pidFile === undefined) {
    throw new LeakyError('LEAKY_CLI', `no running master found (no pid file in ${pidFileCandidates(env).join(', ')}); pass --pid-file or --pid`)
  }
  const pid = readPidFile(pidFile)
  if (pid === null) throw new LeakyError('LEAKY_CLI', `no running master: ${pidFile} is missing or holds no pid`)
  if (!alive(pid) || !looksLikeMaster(pid)) {
    throw new LeakyError('LEAKY_CLI', `no running master: ${pidFile} names pid ${pid}, which is not a running leaky master (stale pid file)`)
  }
  const sock = controlSocketPath(pidFile, pid)
  return { pid, socket: existsSync(sock) ? sock : findControlSocket(pid, env), pidFile }
}

type Out = { stdout: (s: string) => void; stderr: (s: string) => void }
const STD: Out = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) }

// Without a control socket the command can only be sent as a signal; its outcome is in the master's log.
function signalOnly(m: MasterRef, signal: NodeJS.Signals, out: Out): number {
  process.kill(m.pid, signal)
  out.stdout(`sent ${signal} to master ${m.pid} (no control socket found, so no result: see its log)\n`)
  return 0
}

/** Exit code 0 when the new config is in force, 1 (errors printed) when the old one stays. */
export async function reloadCommand(m: MasterRef, out: Out = STD): Promise<number> {
  if (m.socket === null) return signalOnly(m, 'SIGHUP', out)
  const r = (await controlRequest(m.socket, { cmd: 'reload' }, 60_000)) as ReloadReply
  if (!r.ok) {
    for (const e of r.errors) out.stderr(`${e}\n`)
    out.stderr('leaky: reload failed; the running config stays in force\n')
    return 1
  }
  out.stdout(`reloaded: generation ${r.generation}, config version ${r.config_version}; changed: ${r.applied.length > 0 ? r.applied.join(', ') : 'nothing'}\n`)
  if (r.needs_upgrade.length > 0) out.stdout(`not applied until \`leaky upgrade\`: ${r.needs_upgrade.join(', ')}\n`)
  if (r.needs_restart.length > 0) out.stdout(`not applied until the service restarts: ${r.needs_restart.join(', ')}\n`)
  return 0
}

/** Exit code 0 when the new generation serves, 1 (reason printed) when the old one keeps serving. */
export async function upgradeCommand(m: MasterRef, out: Out = STD): Promise<number> {
  if (m.socket === null) return signalOnly(m, 'SIGUSR2', out)
  const r = (await controlRequest(m.socket, { cmd: 'upgrade' }, 180_000)) as UpgradeReply
  if (!r.ok) {
    for (const e of r.errors) out.stderr(`${e}\n`)
    out.stderr(`leaky: upgrade failed: ${r.reason}; the running generation keeps serving\n`)
    return 1
  }
  out.stdout(`upgraded: generation ${r.generation} (pid ${r.pid}) serves; generation ${r.previous} is draining\n`)
  return 0
}

/** SIGTERM, then wait for the master to exit (it drains first). */
export async function stopCommand(m: MasterRef, timeoutMs: number, out: Out = STD): Promise<number> {
  process.kill(m.pid, 'SIGTERM')
  const until = Date.now() + timeoutMs
  while (alive(m.pid)) {
    if (Date.now() > until) {
      out.stderr(`leaky: master ${m.pid} is still running after ${Math.round(timeoutMs / 1000)} s (still draining?)\n`)
      return 1
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  out.stdout(`stopped (master ${m.pid})\n`)
  return 0
}

export async function statusCommand(m: MasterRef, json: boolean, out: Out = STD): Promise<number> {
  if (m.socket === null) {
    out.stderr(`leaky: master ${m.pid} is running, but its control socket was not found (is it a leaky master you may access?)\n`)
    return 1
  }
  const r = (await controlRequest(m.socket, { cmd: 'status' }, 10_000)) as { ok: boolean; status: MasterStatus; error?: string }
  if (!r.ok) {
    out.stderr(`leaky: ${r.error ?? 'status failed'}\n`)
    return 1
  }
  out.stdout(json ? `${JSON.stringify(r.status, null, 2)}\n` : formatStatus(r.status))
  return 0
}
