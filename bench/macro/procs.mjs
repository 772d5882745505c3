// The processes the bench starts: found on PATH (or the sbin dirs nginx lives in), started pinned to a CPU set
// with taskset when one is given, read for their first JSON line (the port), and stopped by their own PID only.
import { spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin']

function executable(p) {
  try {
    accessSync(p, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** Absolute path of an executable, or null. `override` (an env var's value) wins when set: then only it is tried. */
export function which(name, override) {
  if (override) return executable(override) ? override : null
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(EXTRA_DIRS)
  for (const d of dirs) {
    if (d !== '' && executable(join(d, name))) return join(d, name)
  }
  return null
}

const started = new Set()

/**
 * Spawns `cmd args` (through `taskset -c cpus` when `taskset` and `cpus` are given: taskset execs the command,
 * so the PID is the command's own). stdout is kept for `waitForLine`, stderr's tail for error messages.
 */
export function start(cmd, args, { taskset = null, cpus = null, env = process.env, cwd } = {}) {
  const argv = taskset !== null && cpus !== null ? [taskset, ['-c', cpus, cmd, ...args]] : [cmd, args]
  const child = spawn(argv[0], argv[1], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  const p = { child, pid: child.pid, name: cmd, stdout: '', stderr: '', exited: false, code: null }
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  // keep only the head of stdout (the ready line) and the tail of stderr (the reason it died)
  child.stdout.on('data', (s) => { if (p.stdout.length < 65536) p.stdout += s })
  child.stderr.on('data', (s) => { p.stderr = (p.stderr + s).slice(-4096) })
  p.exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      p.exited = true
      p.code = code ?? signal
      started.delete(p)
      resolve(p.code)
    })
    child.on('error', (err) => {
      p.exited = true
      p.code = err.message
      started.delete(p)
      resolve(p.code)
    })
  })
  started.add(p)
  return p
}

/** Resolves with the first stdout line that parses as JSON and satisfies `match`; rejects on exit or timeout. */
export function waitForJson(p, match, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    let seen = 0
    const check = () => {
      let nl
      while ((nl = p.stdout.indexOf('\n', seen)) !== -1) {
        const line = p.stdout.slice(seen, nl)
        seen = nl + 1
        let v
        try {
          v = JSON.parse(line)
        } catch {
          continue
        }
        if (match(v)) {
          done()
          resolve(v)
          return
        }
      }
    }
    const onExit = () => {
      done()
      reject(new Error(`${p.name} exited (${p.code}) before it was ready: ${p.stderr.trim() || p.stdout.trim()}`))
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`${p.name} not ready after ${timeoutMs} ms: ${p.stderr.trim()}`))
    }, timeoutMs)
    const done = () => {
      clearTimeout(timer)
      p.child.stdout.off('data', check)
      p.child.off('exit', onExit)
    }
    p.child.stdout.on('data', check)
    p.child.once('exit', onExit)
    check()
  })
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
export async function stop(p, graceMs = 5000) {
  if (p.exited) return p.code
  try {
    process.kill(p.pid, 'SIGTERM')
  } catch {
    return p.code
  }
  const timer = setTimeout(() => {
    try {
      process.kill(p.pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }, graceMs)
  const code = await p.exit
  clearTimeout(timer)
  return code
}

/** Stops everything this module started (Ctrl-C, a failed start): only those PIDs. */
export async function stopAll() {
  await Promise.all([...started].map((p) => stop(p, 2000)))
}

/** Runs a command to completion; resolves { code, stdout, stderr }. */
export function run(cmd, args, opts = {}) {
  const p = start(cmd, args, opts)
  return p.exit.then((code) => ({ code, stdout: p.stdout, stderr: p.stderr, pid: p.pid }))
}
