// CPU time of a process tree from /proc: utime + stime of the process (all its threads, live and exited) and of
// every live descendant (nginx's workers, a proxy generation child). Sampled before and after a measured window;
// the delta divided by the requests completed in it is the CPU cost of one request.
import { readdirSync, readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  const n = Number(r.stdout?.trim())
  return Number.isInteger(n) && n > 0 ? n : 100
})()

export const hasProc = (() => {
  try {
    readFileSync('/proc/self/stat', 'utf8')
    return true
  } catch {
    return false
  }
})()

/** [ppid, utime + stime in ticks] of one PID, or null when it is gone. */
function stat(pid) {
  let s
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // comm (field 2) may hold spaces and parentheses: fields are counted from the last ')'
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return [Number(f[1]), Number(f[11]) + Number(f[12])]
}

/** CPU seconds used so far by `pid` and its live descendants; NaN without /proc. */
export function cpuSeconds(pid) {
  if (!hasProc) return NaN
  const root = stat(pid)
  if (root === null) return NaN
  const children = new Map()
  for (const name of readdirSync('/proc')) {
    const c = name.charCodeAt(0)
    if (c < 48 || c > 57) continue
    const st = stat(name)
    if (st === null) continue
    const list = children.get(st[0])
    if (list === undefined) children.set(st[0], [[Number(name), st[1]]])
    else list.push([Number(name), st[1]])
  }
  let ticks = root[1]
  const stack = [pid]
  while (stack.length > 0) {
    for (const [child, t] of children.get(stack.pop()) ?? []) {
      ticks += t
      stack.push(child)
    }
  }
  return ticks / CLK_TCK
}

/**
 * Busy CPU seconds of the whole machine (all cores, every process, and time the hypervisor stole) from /proc/stat;
 * NaN without it. irq and softirq time is left out: with IRQ time accounting it belongs to no process, and on
 * loopback most of it is our own traffic's.
 */
export function machineBusySeconds() {
  let s
  try {
    s = readFileSync('/proc/stat', 'utf8')
  } catch {
    return NaN
  }
  // cpu  user nice system idle iowait irq softirq steal …
  const f = s.slice(0, s.indexOf('\n')).trim().split(/\s+/).map(Number)
  return (f[1] + f[2] + f[3] + f[8]) / CLK_TCK
}

/** CPU seconds of this process, its threads, and its children that have exited and been waited for (wrk). */
export function selfSeconds() {
  const s = readFileSync('/proc/self/stat', 'utf8')
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK
}

/**
 * Samples several process trees at once: { name: seconds }, plus `machine` (busy seconds of all cores) and
 * `client` (this process and its finished children): what is left is CPU other programs took during the window.
 */
export function sample(pids) {
  const out = {}
  for (const [name, pid] of Object.entries(pids)) out[name] = cpuSeconds(pid)
  if (hasProc) {
    out.machine = machineBusySeconds()
    out.client = selfSeconds()
  }
  return out
}
