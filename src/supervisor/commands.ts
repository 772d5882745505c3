// `leaky reload | upgrade | stop | status`: find the running master (--pid, --pid-file, the config's pid_file or
// listen address, or the only one running), ask it over its control socket, print the answer. Without a control
// socket (another user's master, an old one) reload, upgrade and stop fall back to the signal, which works but
// cannot report a result.
import path from 'node:path'
import { loadConfigFile, formatIssue } from '../config/index.js'
import { LeakyError, EXIT } from '../errors.js'
import { readConfigHints } from './config-hints.js'
import { controlRequest } from './control.js'
import { describe, discoverMasters, formatMasterList, sameConfigFile, socketOf, type FoundMaster } from './discover.js'
import type { ReloadReply, UpgradeReply, MasterStatus } from './master.js'
import { alive, findControlSocket, looksLikeMaster, pidFileName, readPidFile, runtimeDirCandidates } from './pid-file.js'
import { formatStatus } from './status-table.js'

export interface TargetOptions {
  pid?: string
  pidFile?: string
  config?: string
}

export type MasterRef = FoundMaster

const PICK = 'pass -c FILE, --pid-file FILE or --pid PID'

function cli(message: string): LeakyError {
  return new LeakyError('LEAKY_CLI', message)
}

/** The config file that names the master: -c, else $LEAKY_CONFIG; none when --pid or --pid-file says more. */
function targetConfig(opts: TargetOptions, env: NodeJS.ProcessEnv): string | undefined {
  if (opts.pid !== undefined || opts.pidFile !== undefined) return undefined
  return opts.config ?? (env.LEAKY_CONFIG !== '' ? env.LEAKY_CONFIG : undefined)
}

function byPid(arg: string, env: NodeJS.ProcessEnv): Promise<MasterRef> {
  const pid = Number(arg)
  if (!Number.isInteger(pid) || pid <= 0) throw cli(`--pid: not a pid: ${arg}`)
  if (!alive(pid)) throw cli(`no process ${pid}`)
  if (!looksLikeMaster(pid)) throw cli(`process ${pid} is not a leaky master (\`leaky start\`)`)
  return describe({ pid, pidFile: null, socket: findControlSocket(pid, runtimeDirCandidates(env)) })
}

function byPidFile(pidFile: string, env: NodeJS.ProcessEnv, why = ''): Promise<MasterRef> {
  const pid = readPidFile(pidFile)
  if (pid === null) throw cli(`no running master: ${pidFile}${why} is missing or holds no pid`)
  if (!alive(pid) || !looksLikeMaster(pid)) {
    throw cli(`no running master: ${pidFile}${why} names pid ${pid}, which is not a running leaky master (stale pid file)`)
  }
  return describe({ pid, pidFile, socket: socketOf(pid, pidFile, env) })
}

function several(ms: FoundMaster[], what: string): LeakyError {
  return cli(`${ms.length} ${what}; ${PICK}:\n${formatMasterList(ms).trimEnd()}`)
}

function none(env: NodeJS.ProcessEnv): LeakyError {
  return cli(`no running master found (looked in ${runtimeDirCandidates(env).join(', ')}); ${PICK}`)
}

/**
 * The master of a config file, from what the YAML says without validating it: its pid_file, else the pid file
 * name its listen address gives, else the running master whose config file it is (port 0, or a listen this shell
 * cannot resolve).
 */
async function byConfig(file: string, env: NodeJS.ProcessEnv): Promise<MasterRef> {
  const hints = readConfigHints(file, env)
  if (typeof hints.pidFile === 'string') return byPidFile(path.resolve(hints.pidFile), env, ` (pid_file in ${file})`)
  const all = await discoverMasters(env)
  const named = hints.listen === null || hints.listen.endsWith(':0') ? [] : all.filter((m) => m.pidFile !== null && path.basename(m.pidFile) === pidFileName(hints.listen!, 0))
  const mine = named.length > 0 ? named : all.filter((m) => sameConfigFile(m, file))
  if (mine.length === 1) return mine[0]
  if (mine.length > 1) throw several(mine, `masters run ${file}`)
  const listen = hints.listen === null ? '' : ` (listen ${hints.listen})`
  const others = all.length === 0 ? '' : `; running:\n${formatMasterList(all).trimEnd()}`
  throw cli(`no running master for ${file}${listen} in ${runtimeDirCandidates(env).join(', ')}${others}`)
}

/** The master to talk to; a LeakyError with a helpful message when there is none, or several and no choice. */
export async function locateMaster(opts: TargetOptions, env: NodeJS.ProcessEnv = process.env): Promise<MasterRef> {
  if (opts.pid !== undefined) return byPid(opts.pid, env)
  if (opts.pidFile !== undefined) return byPidFile(opts.pidFile, env)
  const file = targetConfig(opts, env)
  if (file !== undefined) return byConfig(file, env)
  const all = await discoverMasters(env)
  if (all.length === 1) return all[0]
  if (all.length === 0) throw none(env)
  throw several(all, 'masters are running')
}

type Out = { stdout: (s: string) => void; stderr: (s: string) => void }
const STD: Out = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) }

// Without a control socket the command can only be sent as a signal; its outcome is in the master's log.
function signalOnly(m: MasterRef, signal: NodeJS.Signals, out: Out): number {
  process.kill(m.pid, signal)
  out.stdout(`sent ${signal} to master ${m.pid} (no control socket found, so no result: see its log)\n`)
  return EXIT.OK
}

/** Exit code 0 when the new config is in force, 1 (errors printed) when the old one stays. */
export async function reloadCommand(m: MasterRef, out: Out = STD): Promise<number> {
  if (m.socket === null) return signalOnly(m, 'SIGHUP', out)
  const r = (await controlRequest(m.socket, { cmd: 'reload' }, 60_000)) as ReloadReply
  if (!r.ok) {
    for (const e of r.errors) out.stderr(`${e}\n`)
    out.stderr('leaky: reload failed; the running config stays in force\n')
    return EXIT.FAILED
  }
  out.stdout(`reloaded: generation ${r.generation}, config version ${r.config_version}; changed: ${r.applied.length > 0 ? r.applied.join(', ') : 'nothing'}\n`)
  if (r.needs_upgrade.length > 0) out.stdout(`not applied until \`leaky upgrade\`: ${r.needs_upgrade.join(', ')}\n`)
  if (r.needs_restart.length > 0) out.stdout(`not applied until the service restarts: ${r.needs_restart.join(', ')}\n`)
  return EXIT.OK
}

/** Exit code 0 when the new generation serves, 1 (reason printed) when the old one keeps serving. */
export async function upgradeCommand(m: MasterRef, out: Out = STD): Promise<number> {
  if (m.socket === null) return signalOnly(m, 'SIGUSR2', out)
  const r = (await controlRequest(m.socket, { cmd: 'upgrade' }, 180_000)) as UpgradeReply
  if (!r.ok) {
    for (const e of r.errors) out.stderr(`${e}\n`)
    out.stderr(`leaky: upgrade failed: ${r.reason}; the running generation keeps serving\n`)
    return EXIT.FAILED
  }
  out.stdout(`upgraded: generation ${r.generation} (pid ${r.pid}) serves; generation ${r.previous} is draining\n`)
  return EXIT.OK
}

/** SIGTERM, then wait for the master to exit (it drains first). */
export async function stopCommand(m: MasterRef, timeoutMs: number, out: Out = STD): Promise<number> {
  process.kill(m.pid, 'SIGTERM')
  const until = Date.now() + timeoutMs
  while (alive(m.pid)) {
    if (Date.now() > until) {
      out.stderr(`leaky: master ${m.pid} is still running after ${Math.round(timeoutMs / 1000)} s (still draining?)\n`)
      return EXIT.FAILED
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  out.stdout(`stopped (master ${m.pid})\n`)
  return EXIT.OK
}

export async function statusCommand(m: MasterRef, json: boolean, out: Out = STD): Promise<number> {
  if (m.socket === null) {
    out.stderr(`leaky: master ${m.pid} is running, but its control socket was not found (is it a leaky master you may access?)\n`)
    return EXIT.FAILED
  }
  const r = (await controlRequest(m.socket, { cmd: 'status' }, 10_000)) as { ok: boolean; status: MasterStatus; error?: string }
  if (!r.ok) {
    out.stderr(`leaky: ${r.error ?? 'status failed'}\n`)
    return EXIT.FAILED
  }
  out.stdout(json ? `${JSON.stringify(r.status, null, 2)}\n` : formatStatus(r.status))
  return EXIT.OK
}

/**
 * `leaky reload`: a file the master rejects prints its errors (file:line:col, as `leaky validate`), exit 1. When no
 * master can be found for `-c FILE`, its errors as this shell sees them are printed too, before saying so.
 */
export async function reloadTarget(opts: TargetOptions, env: NodeJS.ProcessEnv = process.env, out: Out = STD): Promise<number> {
  const file = targetConfig(opts, env)
  let m: MasterRef
  try {
    m = await locateMaster(opts, env)
  } catch (err) {
    if (file !== undefined) {
      const r = loadConfigFile(file, env)
      if (!r.ok) for (const i of r.issues) out.stderr(`${formatIssue(i)}\n`)
    }
    throw err
  }
  // the master re-reads the file it was started with, which may not be the one named here
  if (file !== undefined && m.configFile !== null && !sameConfigFile(m, file)) {
    out.stderr(`leaky: note: master ${m.pid} runs ${m.configFile}; that is the file it reloads, not ${file}\n`)
  }
  return reloadCommand(m, out)
}

/**
 * `leaky status`: with nothing to pick a master by, one line for every master found, and the full table too when
 * there is just one. --json needs one master (its status object), as before.
 */
export async function statusTarget(opts: TargetOptions & { json?: boolean }, env: NodeJS.ProcessEnv = process.env, out: Out = STD): Promise<number> {
  const json = opts.json === true
  if (opts.pid !== undefined || opts.pidFile !== undefined || targetConfig(opts, env) !== undefined || json) {
    return statusCommand(await locateMaster(opts, env), json, out)
  }
  const all = await discoverMasters(env)
  if (all.length === 0) throw none(env)
  out.stdout(formatMasterList(all))
  if (all.length > 1) return EXIT.OK
  out.stdout('\n')
  return statusCommand(all[0], false, out)
}
