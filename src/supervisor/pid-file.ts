// Where the master writes its pid and opens its control socket, and how the CLI finds them again. The default
// follows systemd: $RUNTIME_DIRECTORY (RuntimeDirectory=leaky) when set, else /run/leaky when this user may
// write there, else the temp dir with the uid in the name so two users never collide.
import { accessSync, constants, readFileSync, writeFileSync, renameSync, unlinkSync, existsSync, readdirSync, readlinkSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const RUN_DIR = '/run/leaky'

function uid(): number {
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

/** The pid file a master uses when the config has no pid_file. */
export function defaultPidFile(env: NodeJS.ProcessEnv = process.env): string {
  const rt = env.RUNTIME_DIRECTORY
  // systemd may pass several directories separated by ':'; the first is ours
  if (rt !== undefined && rt !== '') return path.join(rt.split(':')[0], 'leaky.pid')
  if (writable(RUN_DIR)) return path.join(RUN_DIR, 'leaky.pid')
  return path.join(os.tmpdir(), `leaky-${uid()}.pid`)
}

/** Where the CLI looks when told nothing: the places a master may have chosen, in the same order. */
export function pidFileCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = []
  const rt = env.RUNTIME_DIRECTORY
  if (rt !== undefined && rt !== '') out.push(path.join(rt.split(':')[0], 'leaky.pid'))
  out.push(path.join(RUN_DIR, 'leaky.pid'), path.join(os.tmpdir(), `leaky-${uid()}.pid`))
  return out
}

/**
 * The control socket sits beside the pid file and carries the master's pid in its name, so masters started at
 * the same time with the same pid file (tests, a mistake) never steal each other's socket.
 */
export function controlSocketPath(pidFile: string, pid: number): string {
  return path.join(path.dirname(pidFile), `leaky-${pid}.sock`)
}

/** Write atomically (temp + rename) so a reader never sees an empty or half-written pid. */
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
 * The control socket of the process `pid`, when only its pid is known (`leaky status --pid N`): first the names a
 * master would have used in the usual directories, then the unix sockets that process holds open (/proc/N/fd →
 * /proc/net/unix), which finds it wherever its pid file was.
 */
export function findControlSocket(pid: number, env: NodeJS.ProcessEnv = process.env): string | null {
  for (const pf of pidFileCandidates(env)) {
    const s = controlSocketPath(pf, pid)
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
