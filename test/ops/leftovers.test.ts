// Nothing left behind (issue #13.6). First the product: real masters started and ended in the usual ways (leaky
// stop, SIGTERM, SIGINT, an upgrade, a generation killed with -9, a start that fails, a start refused, a master
// killed with -9) with TMPDIR and LEAKY_RUNTIME_DIR pointed at fresh directories, which are empty afterwards. Then
// the test helpers: a test file that fails, or throws with a proxy running, still has its scratch dir removed and
// its proxy stopped; one killed with -9 leaves its scratch dir, which the next test file removes.
//
// What this proves: these lifecycles leave no file in TMPDIR or the runtime dir, and a test file using
// test/helpers/scratch.ts (every file starting proxies does, through proxy.ts) leaves nothing in the real temp dir,
// pass or fail. It does not prove that every test file uses it: one that writes to a fixed path, or spawns with an
// environment of its own, is outside this.
import t from 'tap'
import { SCRATCH, scratchDir } from '../helpers/scratch.js'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { CLI, ROOT, freePort, startOnFreePort, startProxy, type Proxy } from '../helpers/proxy.js'
import { runCli } from '../fixtures/supervisor/master.js'

const fresh = scratchDir('fresh-')
const TMP = path.join(fresh, 'tmp')
const RUN = path.join(fresh, 'run')
mkdirSync(TMP)
mkdirSync(RUN)
const env = { TMPDIR: TMP, LEAKY_RUNTIME_DIR: RUN }
const cliEnv = { ...process.env, ...env }

const config = (listen = '127.0.0.1:0') => `listen: ${listen}
workers: 1
drain_timeout: 5s
admin: { listen: 127.0.0.1:0 }
upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub }
`

function write(yaml: string): string {
  // configs live outside the directories under watch: they are the test's files, not the product's
  const file = path.join(scratchDir('cfg-'), 'leaky.yaml')
  writeFileSync(file, yaml)
  return file
}

const started: Proxy[] = []
t.teardown(() => Promise.all(started.map((p) => p.stop())))

async function master(file: string, e: NodeJS.ProcessEnv = env): Promise<Proxy> {
  const p = await startProxy(file, { env: e })
  started.push(p)
  return p
}

/**
 * Resolves once the master and every generation it started have exited: generations inherit the master's stdout,
 * so the pipe closes only when the last of them is gone.
 */
async function allExited(p: Proxy): Promise<number | null> {
  const closed = p.child.stdout!.closed ? Promise.resolve() : once(p.child.stdout!, 'close')
  const [code] = await Promise.all([p.exited, closed])
  return code
}

/** Alive and not a zombie (a process whose parent died may wait unreaped). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** For processes that are not our children (a fixture started them) no exit event reaches us: look until gone. */
async function gone(pid: number, ms = 30_000): Promise<boolean> {
  for (const until = Date.now() + ms; running(pid); ) {
    if (Date.now() > until) return false
    await new Promise((r) => setTimeout(r, 50))
  }
  return true
}

t.test('leaky stop, SIGTERM, SIGINT: each master and its generation leave nothing', async (t) => {
  const files = [write(config()), write(config()), write(config())]
  const [a, b, c] = await Promise.all(files.map((f) => master(f)))
  const st = await runCli(['stop', '-c', files[0]], { env: cliEnv })
  t.equal(st.code, 0, st.stderr)
  t.equal(await allExited(a), 0)
  b.child.kill('SIGTERM')
  t.equal(await allExited(b), 0)
  c.child.kill('SIGINT')
  t.equal(await allExited(c), 0)
  t.same(readdirSync(TMP), [])
  t.same(readdirSync(RUN), [])
})

t.test('an upgrade, then a generation killed with -9 and restarted, then stop', async (t) => {
  const file = write(config())
  const p = await master(file)
  const up = await runCli(['upgrade', '-c', file], { env: cliEnv })
  t.equal(up.code, 0, up.stderr)
  const st = JSON.parse((await runCli(['status', '--json', '-c', file], { env: cliEnv })).stdout) as { generations: Array<{ role: string; pid: number }> }
  process.kill(st.generations.find((g) => g.role === 'current')!.pid, 'SIGKILL')
  await p.waitLog((l) => l.msg === 'generation restarted')
  const stop = await runCli(['stop', '-c', file], { env: cliEnv })
  t.equal(stop.code, 0, stop.stderr)
  t.equal(await allExited(p), 0)
  t.same(readdirSync(TMP), [], 'three generations, three embedded stubs: no socket file')
  t.same(readdirSync(RUN), [])
})

t.test('a start whose generation cannot listen, and a start refused for a live master\'s pid file', async (t) => {
  const port = await freePort()
  const squatter = net.createServer()
  await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r))
  const failed = spawn(process.execPath, [CLI, 'start', '-c', write(config(`127.0.0.1:${port}`))], { cwd: ROOT, env: cliEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  failed.stdout.resume()
  failed.stderr.resume()
  const [[code]] = await Promise.all([once(failed, 'exit'), once(failed.stdout, 'close')])
  await new Promise<void>((r) => squatter.close(() => r()))
  t.equal(code, 1, 'the generation could not listen')
  t.same(readdirSync(TMP), [])
  t.same(readdirSync(RUN), [], 'the master removed its pid file and socket')

  const cfgDir = scratchDir('cfg-')
  const { proxy: holder, port: held } = await startOnFreePort((p) => {
    const file = path.join(cfgDir, 'holder.yaml')
    writeFileSync(file, config(`127.0.0.1:${p}`))
    return file
  }, { env })
  started.push(holder)
  const fixed = `127.0.0.1:${held}`
  const refused = spawn(process.execPath, [CLI, 'start', '-c', write(config(fixed))], { cwd: ROOT, env: cliEnv, stdio: 'ignore' })
  t.equal((await once(refused, 'exit'))[0], 1, 'refused')
  t.equal(readdirSync(RUN).length, 2, 'only the holder\'s pid file and socket')
  holder.child.kill('SIGTERM')
  t.equal(await allExited(holder), 0)
  t.same(readdirSync(TMP), [])
  t.same(readdirSync(RUN), [])
})

t.test('a master killed with -9 cannot clean up; the next `leaky status` removes what it left', async (t) => {
  const p = await master(write(config()))
  p.child.kill('SIGKILL')
  await allExited(p)
  t.equal(readdirSync(RUN).length, 2, 'its pid file and control socket')
  t.same(readdirSync(TMP), [], 'its generation drained and exited, leaving nothing')
  const st = await runCli(['status'], { env: cliEnv })
  t.equal(st.code, 1)
  t.match(st.stderr, /no running master found/)
  t.same(readdirSync(RUN), [])
})

let runDirWritable = false
try {
  accessSync('/run/leaky', constants.W_OK)
  runDirWritable = true
} catch {
  // the usual case off a server
}
t.test('without LEAKY_RUNTIME_DIR: the per-user runtime dir under TMPDIR, 0700, left empty', { skip: runDirWritable ? '/run/leaky is writable here: a master would use it' : false }, async (t) => {
  const tmp = scratchDir('tmp-')
  const e = { TMPDIR: tmp, LEAKY_RUNTIME_DIR: '', RUNTIME_DIRECTORY: '' }
  const p = await master(write(config()), e)
  const dir = path.join(tmp, `leaky-${process.getuid!()}`)
  t.equal(statSync(dir).mode & 0o777, 0o700)
  const st = await runCli(['status'], { env: { ...process.env, ...e } })
  t.equal(st.code, 0, st.stderr)
  t.match(st.stdout, new RegExp(`^${p.child.pid} .*${dir}/leaky-127\\.0\\.0\\.1-0-${p.child.pid}\\.pid$`, 'm'))
  p.child.kill('SIGTERM')
  t.equal(await allExited(p), 0)
  t.same(readdirSync(tmp), [`leaky-${process.getuid!()}`], 'the per-user dir stays (one per user, not per run)')
  t.same(readdirSync(dir), [], 'empty')
})

const FIXTURE = path.join(ROOT, 'test/fixtures/ops/helper-user.ts')
// the fixture's "real" temp dir is one of ours, so its scratch dirs (and the sweep) stay in this file's
const fixtureTmp = scratchDir('fixture-tmp-')

interface FixtureRun {
  code: number | null
  scratch: string
  pids: number[]
  stderr: string
}

/** Run the fixture as a test file of its own (tap's TypeScript loader, not under this file's tap runner). */
function fixture(mode: string, onLine?: (child: ReturnType<typeof spawn>) => void, line = /^scratch .+\n/m): Promise<FixtureRun> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, LEAKY_TEST_REAL_TMPDIR: fixtureTmp }
  for (const k of Object.keys(childEnv)) if (k.startsWith('TAP')) delete childEnv[k]
  const flags = process.execArgv.filter((a) => a.includes('@tapjs/typescript') || a === '--enable-source-maps')
  const child = spawn(process.execPath, [...flags, FIXTURE, mode], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  let told = false
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d
    if (!told && line.test(stderr)) {
      told = true
      onLine?.(child)
    }
  })
  return once(child, 'exit').then(([code]) => ({
    code: code as number | null,
    scratch: /^scratch (.+)$/m.exec(stderr)?.[1] ?? '',
    pids: (/^pids (\d+) (\d+)$/m.exec(stderr)?.slice(1) ?? []).map(Number),
    stderr,
  }))
}

t.test('a test file killed with -9 leaves its scratch dir; the next test file to start removes it', async (t) => {
  const killed = await fixture('hang', (child) => child.kill('SIGKILL'))
  t.equal(killed.code, null)
  t.ok(killed.scratch.startsWith(fixtureTmp) && existsSync(killed.scratch), `left: ${killed.scratch}`)
  const next = await fixture('fail')
  t.equal(next.code, 1, next.stderr)
  t.notOk(existsSync(killed.scratch), 'swept by the next one')
})

t.test('a test file that fails: its teardown stops the proxy, its scratch dir is removed', async (t) => {
  const r = await fixture('fail')
  t.equal(r.code, 1, 'the deliberate failure')
  t.equal(r.pids.length, 2, r.stderr)
  t.notOk(existsSync(r.scratch), 'scratch dir removed')
  for (const pid of r.pids) t.ok(await gone(pid), `process ${pid} is gone`)
})

t.test('a test file that throws with a proxy running and no teardown: the proxy is killed, the scratch dir removed', async (t) => {
  const r = await fixture('throw')
  t.not(r.code, 0)
  t.match(r.stderr, /deliberately, with a proxy running/)
  t.equal(r.pids.length, 2, r.stderr)
  t.notOk(existsSync(r.scratch), 'scratch dir removed')
  for (const pid of r.pids) t.ok(await gone(pid), `process ${pid} (master, then generation) is gone`)
})

t.test('a test file that tap times out (SIGALRM) with a proxy running: the proxy is killed, the scratch dir removed', async (t) => {
  // once its pids are out and it waits: what tap does to a file past its timeout
  const r = await fixture('timeout', (child) => child.kill('SIGALRM'), /^waiting\n/m)
  t.not(r.code, 0)
  t.equal(r.pids.length, 2, r.stderr)
  t.notOk(existsSync(r.scratch), 'scratch dir removed')
  for (const pid of r.pids) t.ok(await gone(pid), `process ${pid} (master, then generation) is gone`)
})

t.test('everything above left TMPDIR, the runtime dir and the fixtures\' temp dir empty', async (t) => {
  t.same(readdirSync(TMP), [])
  t.same(readdirSync(RUN), [])
  t.same(readdirSync(fixtureTmp), [])
  t.ok(SCRATCH.startsWith(process.env.LEAKY_TEST_REAL_TMPDIR!), 'this file\'s own scratch dir is removed at its teardown, like every other')
})
