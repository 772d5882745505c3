// Where a master writes its pid and opens its control socket. One pid file per listen address, in the runtime dir:
// masters on different ports (a second install, a test suite starting dozens) never take each other's file, so
// `leaky status` can see them all. The runtime dir: $LEAKY_RUNTIME_DIR (tests, installs side by side), else
// $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), else /run/leaky when this user may write there, else
// $TMPDIR/leaky-<uid>/ (0700: a user's pid files and sockets are not in a world-writable directory).
import {
  accessSync, constants, readFileSync, writeFileSync, renameSync, unlinkSync, existsSync, readdirSync, readlinkSync, linkSync, mkdirSync, lstatSync,
} from 'node:fs'
import path from 'node:path'
import { LeakyError } from '../errors.js'

export const RUN_DIR = '/run/leaky'

export function uid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : 0
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK)
    return true
  } catch {
    return false
  }
}

function set(v: string | undefined): v is string {
  return v !== undefined && v !== ''
}

/** os.tmpdir() for a given environment (the CLI and tests pass one). */
export function tmpBase(env: NodeJS.ProcessEnv): string {
  const t = [env.TMPDIR, env.TMP, env.TEMP].find(set) ?? '/tmp'
  return t.length > 1 ? t.replace(/\/+$/, '') : t
}

/** The per-user fallback under the temp dir; its owner and mode are checked before use (ensureRuntimeDir). */
export function userTmpDir(env: NodeJS.ProcessEnv): string {
  return path.join(tmpBase(env), `leaky-${uid()}`)
}

// systemd may pass several directories separated by ':'; the first is ours
function systemdDir(env: NodeJS.ProcessEnv): string | null {
  return set(env.RUNTIME_DIRECTORY) ? env.RUNTIME_DIRECTORY.split(':')[0] : null
}

/** Where a master without pid_file puts its pid file and control socket. */
export function runtimeDir(env: NodeJS.ProcessEnv = process.env, runDir = RUN_DIR): string {
  if (set(env.LEAKY_RUNTIME_DIR)) return env.LEAKY_RUNTIME_DIR
  return systemdDir(env) ?? (writable(runDir) ? runDir : userTmpDir(env))
}

/**
 * Where the CLI looks for masters: every place a master may have chosen. $LEAKY_RUNTIME_DIR, when set, is the only
 * one, so a test suite (which sets it) never sees, or cleans, the pid files of the user's own masters.
 */
export function runtimeDirCandidates(env: NodeJS.ProcessEnv = process.env, runDir = RUN_DIR): string[] {
  if (set(env.LEAKY_RUNTIME_DIR)) return [path.resolve(env.LEAKY_RUNTIME_DIR)]
  const dirs = [systemdDir(env), runDir, userTmpDir(env)].filter((d): d is string => d !== null).map((d) => path.resolve(d))
  return [...new Set(dirs)]
}

/**
 * The single pid files of versions before per-listen names. A zero-downtime upgrade replaces generations, not the
 * master, so a master started by an older version keeps one of these until the service restarts.
 */
export function legacyPidFiles(env: NodeJS.ProcessEnv = process.env, runDir = RUN_DIR): string[] {
  if (set(env.LEAKY_RUNTIME_DIR)) return []
  const sd = systemdDir(env)
  const out = [sd === null ? null : path.join(sd, 'leaky.pid'), path.join(runDir, 'leaky.pid'), path.join(tmpBase(env), `leaky-${uid()}.pid`)]
  return [...new Set(out.filter((f): f is string => f !== null).map((f) => path.resolve(f)))]
}

const LISTEN_RE = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d+)$/

/**
 * `leaky-127.0.0.1-8080.pid`, from a normalised listen address ("host:port", "[v6]:port"). A port-0 listen (tests)
 * gets a new port on every start, so its name carries the master's pid and two of them never collide.
 */
export function pidFileName(listen: string, pid: number): string {
  const m = LISTEN_RE.exec(listen)
  const host = (m === null ? listen : (m[1] ?? m[2])).replace(/[^A-Za-z0-9.:-]/g, '_')
  const port = m === null ? '' : m[3]
  return port === '0' ? `leaky-${host}-0-${pid}.pid` : `leaky-${host}-${port}.pid`
}

/** Pid files a scan recognises as masters' (the temp file of an atomic write ends in .tmp). */
export function isPidFileName(name: string): boolean {
  return /^leaky-.+\.pid$/.test(name)
}

/** The pid file a master uses when the config has no pid_file. */
export function defaultPidFile(listen: string, env: NodeJS.ProcessEnv = process.env, pid = process.pid): string {
  return path.join(runtimeDir(env), pidFileName(listen, pid))
}

/**
 * Create the runtime dir (0700) when missing. The shared temp dir is world-writable: there the directory must be a
 * real one, ours, and closed to others, or someone else could plant files a master would then trust.
 */
export function ensureRuntimeDir(dir: string, env: NodeJS.ProcessEnv = process.env): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch (err) {
    throw new LeakyError('LEAKY_PID_FILE', `cannot create the runtime directory ${dir}: ${(err as Error).message} (set LEAKY_RUNTIME_DIR or pid_file)`)
  }
  if (path.resolve(dir) !== path.resolve(userTmpDir(env))) return
  const st = lstatSync(dir)
  if (!st.isDirectory() || st.uid !== uid() || (st.mode & 0o077) !== 0) {
    throw new LeakyError('LEAKY_PID_FILE', `refusing the runtime directory ${dir}: it must be a directory owned by uid ${uid()} with mode 0700 (set LEAKY_RUNTIME_DIR or pid_file)`)
  }
}

/**
 * The control socket sits beside the pid file and carries the master's pid in its name, so masters sharing a
 * directory never steal each other's socket.
 */
export function controlSocketPath(pidFile: string, pid: number): string {
  return path.join(path.dirname(pidFile), `leaky-${pid}.sock`)
}

/** Write atomically (temp + rename) so a reader never sees an empty or half-written pid. Replaces any holder. */
export function writePidFile(file: string, pid = process.pid): void {
  const tmp = `${file}.${pid}.tmp`
  writeFileSync(tmp, `${pid}\n`, { mode: 0o644 })
  renameSync(tmp, file)
}

/** The pid in a pid file, or null when missing or not a pid. */
export function readPidFile(file: string): number | null {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return null
  }
  const pid = Number(text.trim())
  return Number.isInteger(pid) && pid > 0 ? pid : null
}

/** Remove the pid file only if it is still ours: a newer master may have taken it over. */
export function removePidFile(file: string, pid = process.pid): void {
  if (readPidFile(file) !== pid) return
  try {
    unlinkSync(file)
  } catch {
    // already gone: nothing to clean
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists but belongs to someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * A pid file can outlive its master and the pid be reused: never trust (or signal) a process whose command line is
 * not a `leaky start` (when /proc cannot say, trust the pid file).
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

/** The pid a pid file names when that process is a running leaky master other than this one; else null. */
export function liveHolder(file: string, self = process.pid): number | null {
  const pid = readPidFile(file)
  return pid !== null && pid !== self && alive(pid) && looksLikeMaster(pid) ? pid : null
}

/**
 * Remove a pid file whose master is gone, with the control socket it left beside it; only while the file still
 * names `stale` (a master starting meanwhile may have taken the name). Errors are ignored: another user's
 * directory is theirs to clean.
 */
export function removeStale(file: string, stale: number | null): void {
  const now = readPidFile(file)
  if (now !== stale) return
  for (const f of stale === null ? [file] : [file, controlSocketPath(file, stale)]) {
    try {
      unlinkSync(f)
    } catch {
      // gone already, or not ours to remove
    }
  }
}

/**
 * Take a pid file for this master: created exclusively (a hard link of a complete temp file, so a reader never sees
 * it empty), replacing a stale one, refused when a live master holds it: two masters on one pid file would steal
 * each other's `leaky stop`, and with SO_REUSEPORT two on one port would split its traffic silently.
 */
export function takePidFile(file: string, pid = process.pid): void {
  for (let attempt = 0; ; attempt++) {
    const tmp = `${file}.${pid}.tmp`
    writeFileSync(tmp, `${pid}\n`, { mode: 0o644 })
    try {
      linkSync(tmp, file)
      return
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      // a file system without hard links: exclusive create is the next best (a reader may see it empty briefly)
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') {
        try {
          writeFileSync(file, `${pid}\n`, { mode: 0o644, flag: 'wx' })
          return
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
        }
      } else if (code !== 'EEXIST') {
        throw err
      }
    } finally {
      try {
        unlinkSync(tmp)
      } catch {
        // already gone
      }
    }
    const holder = liveHolder(file, pid)
    if (holder !== null) {
      throw new LeakyError('LEAKY_PID_FILE', `the pid file ${file} belongs to the running leaky master ${holder}: stop it (leaky stop --pid ${holder}) or give this config another listen address or its own pid_file`)
    }
    if (attempt >= 2) throw new LeakyError('LEAKY_PID_FILE', `cannot take the pid file ${file}: it keeps being replaced`)
    // our own pid counts as stale: a container's master is pid 1 on every start, its /run may persist
    removeStale(file, readPidFile(file))
  }
}

/**
 * The control socket of the process `pid`, when only its pid is known (`leaky status --pid N`): first the name a
 * master would have used in each runtime dir, then the unix sockets that process holds open (/proc/N/fd →
 * /proc/net/unix), which finds it wherever its pid file was.
 */
export function findControlSocket(pid: number, dirs: string[]): string | null {
  for (const d of dirs) {
    const s = path.join(d, `leaky-${pid}.sock`)
    if (existsSync(s)) return s
  }
  let inodes: Set<string>
  try {
    inodes = new Set(
      readdirSync(`/proc/${pid}/fd`)
        .map((fd) => {
          try {
            return readlinkSync(`/proc/${pid}/fd/${fd}`)
          } catch {
            return ''
          }
        })
        .map((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1] ?? '')
        .filter((i) => i !== ''),
    )
  } catch {
    return null
  }
  let table: string
  try {
    table = readFileSync('/proc/net/unix', 'utf8')
  } catch {
    return null
  }
  // columns: Num RefCount Protocol Flags Type St Inode Path
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/)
    if (cols.length < 8 || !inodes.has(cols[6])) continue
    const p = cols[7]
    if (path.basename(p) === `leaky-${pid}.sock`) return p
  }
  return null
}
