// One scratch directory per test file, removed when the file's tests end (tap's root teardown, after every
// teardown the file itself registers) or, failing that, when the process exits. Importing this module points
// TMPDIR and LEAKY_RUNTIME_DIR into it for this process and everything it spawns, so temp files, configs, pid files
// and control sockets of the proxies a test starts land there — and `leaky status` in a test never sees (or cleans)
// the user's own masters. Scratch dirs of test processes that died without cleaning up (SIGKILL, a tap timeout)
// are removed by the next test file that starts.
import type { ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

const PREFIX = 'leaky-test-'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The temp dir the user had before this module pointed TMPDIR into the scratch dir. */
export const REAL_TMP = process.env.LEAKY_TEST_REAL_TMPDIR ?? tmpdir()

for (const name of readdirSync(REAL_TMP)) {
  const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name)
  if (m !== null && Number(m[1]) !== process.pid && !alive(Number(m[1]))) rmSync(path.join(REAL_TMP, name), { recursive: true, force: true })
}

/** This test file's scratch directory: `tmp/` is its TMPDIR, `run/` its LEAKY_RUNTIME_DIR. */
export const SCRATCH = mkdtempSync(path.join(REAL_TMP, `${PREFIX}${process.pid}-`))
export const SCRATCH_TMP = path.join(SCRATCH, 'tmp')
export const SCRATCH_RUN = path.join(SCRATCH, 'run')
mkdirSync(SCRATCH_TMP)
mkdirSync(SCRATCH_RUN, { mode: 0o700 })

process.env.LEAKY_TEST_REAL_TMPDIR = REAL_TMP
process.env.TMPDIR = SCRATCH_TMP
process.env.LEAKY_RUNTIME_DIR = SCRATCH_RUN

// On process exit, not tap's root teardown: the root test ends as soon as its queue of subtests drains, which in
// a file that runs a subtest and then awaits more setup at top level is before that setup reads its config
const remove = () => rmSync(SCRATCH, { recursive: true, force: true })
process.once('exit', remove)

// Processes a test started (proxies, redis-servers) go with it, however it ends: at exit, and when tap ends a
// timed-out file with SIGALRM — 'exit' does not fire for a signal, and a proxy left running would keep serving.
const children = new Set<ChildProcess>()
const reap = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
}
process.once('exit', reap)
process.once('SIGALRM', () => {
  reap()
  // tap's own SIGALRM handler has reported the timeout; with a listener of ours it leaves the exit to us
  process.exit(1)
})

/** Kill `child` (SIGKILL) if it is still running when this test process ends, normally or by tap's timeout. */
export function reapOnExit(child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** A fresh directory inside the scratch dir (removed with it). */
export function scratchDir(prefix = 'd-'): string {
  return mkdtempSync(path.join(SCRATCH_TMP, prefix))
}
