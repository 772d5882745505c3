// What the numbers were measured on: they mean little without it.
import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import { fileURLToPath } from 'node:url'

function cpuModel() {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))
    if (m !== null) return m[1].trim()
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? 'unknown'
}

/** The CPUs this process may run on, as listed by the kernel ("0-1"), or null. */
export function allowedCpus() {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))
    return m === null ? null : expand(m[1])
  } catch {
    return null
  }
}

function expand(list) {
  const out = []
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number)
    for (let c = a; c <= (b ?? a); c++) out.push(c)
  }
  return out
}

function git() {
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const head = spawnSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' })
  if (head.status !== 0) return null
  const dirty = spawnSync('git', ['-C', root, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' })
  return head.stdout.trim() + (dirty.stdout.trim() !== '' ? ' (src/ modified)' : '')
}

export function machine() {
  return {
    nproc: os.availableParallelism(),
    cpu: cpuModel(),
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    loadavg_at_start: os.loadavg().map((v) => Math.round(v * 100) / 100),
    commit: git(),
  }
}
