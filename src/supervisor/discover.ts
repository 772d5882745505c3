// Finding the running masters when not told which: every pid file in the runtime dirs (and the single pid files of
// older versions), stale ones removed on the way, each live master asked over its control socket what it serves.
import { existsSync, readdirSync, readlinkSync, statSync } from 'node:fs'
import path from 'node:path'
import { controlRequest } from './control.js'
import type { MasterStatus } from './master.js'
import {
  alive, controlSocketPath, findControlSocket, isPidFileName, legacyPidFiles, looksLikeMaster, readPidFile, removeStale, runtimeDirCandidates,
} from './pid-file.js'

export interface FoundMaster {
  pid: number
  pidFile: string | null
  socket: string | null
  /** from the master's own status; null when it did not answer (no access to its socket, or an older master) */
  listen: string | null
  configFile: string | null
}

/** The live masters' pid files in these places; a pid file naming a dead or foreign process is removed. */
export function scanPidFiles(dirs: string[], extra: string[] = []): Array<{ pid: number; pidFile: string }> {
  const files: string[] = []
  for (const d of dirs) {
    let names: string[]
    try {
      names = readdirSync(d)
    } catch {
      continue
    }
    for (const n of names.filter(isPidFileName).sort()) files.push(path.join(d, n))
  }
  for (const f of extra) if (existsSync(f) && !files.includes(f)) files.push(f)
  const out: Array<{ pid: number; pidFile: string }> = []
  for (const f of files) {
    const pid = readPidFile(f)
    // not a pid at all: not a file we wrote (ours appear whole), so not ours to delete
    if (pid === null) continue
    if (!alive(pid) || !looksLikeMaster(pid)) {
      removeStale(f, pid)
      continue
    }
    // one master seen twice (RUNTIME_DIRECTORY=/run/leaky is also /run/leaky) is one master
    if (!out.some((o) => o.pid === pid)) out.push({ pid, pidFile: f })
  }
  return out
}

/** What a master says about itself; a master that does not answer is still listed, with what is known. */
export async function describe(ref: { pid: number; pidFile: string | null; socket: string | null }, timeoutMs = 3_000): Promise<FoundMaster> {
  const base: FoundMaster = { ...ref, listen: null, configFile: null }
  if (ref.socket === null) return base
  try {
    const r = (await controlRequest(ref.socket, { cmd: 'status' }, timeoutMs)) as { ok: boolean; status?: MasterStatus }
    if (!r.ok || r.status === undefined) return base
    const m = r.status.master
    const port = r.status.generations.find((g) => g.role === 'current')?.status?.port
    return { ...base, listen: m.listen ?? (port === undefined ? null : `*:${port}`), configFile: m.config_file }
  } catch {
    return base
  }
}

export function socketOf(pid: number, pidFile: string, env: NodeJS.ProcessEnv): string | null {
  const s = controlSocketPath(pidFile, pid)
  return existsSync(s) ? s : findControlSocket(pid, runtimeDirCandidates(env))
}

/** Every running master this user can find without being told where. */
export async function discoverMasters(env: NodeJS.ProcessEnv = process.env): Promise<FoundMaster[]> {
  const found = scanPidFiles(runtimeDirCandidates(env), legacyPidFiles(env))
  return Promise.all(found.map((f) => describe({ ...f, socket: socketOf(f.pid, f.pidFile, env) })))
}

/** Both paths name one file (a master's config_file is as it was given, relative to the master's cwd). */
export function sameConfigFile(m: FoundMaster, file: string): boolean {
  if (m.configFile === null) return false
  let cwd: string | null = null
  if (!path.isAbsolute(m.configFile)) {
    try {
      cwd = readlinkSync(`/proc/${m.pid}/cwd`)
    } catch {
      cwd = null
    }
  }
  const theirs = path.resolve(cwd ?? '.', m.configFile)
  try {
    const a = statSync(theirs)
    const b = statSync(file)
    return a.dev === b.dev && a.ino === b.ino
  } catch {
    return theirs === path.resolve(file)
  }
}

/** One line per master, under a header: what `leaky status` prints, and what a command asks to choose from. */
export function formatMasterList(ms: FoundMaster[]): string {
  const rows = [['PID', 'LISTEN', 'CONFIG', 'PID FILE'], ...ms.map((m) => [String(m.pid), m.listen ?? '?', m.configFile ?? '?', m.pidFile ?? '?'])]
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n'
}
