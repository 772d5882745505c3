// Finding masters without being told where (issue #13.1): each master takes the pid file of its listen address in
// the runtime dir, so two of them (A and B) are both found by `leaky status`; `leaky stop` with two running refuses
// and lists them; `-c A.yaml` picks A; a master started meanwhile with another LEAKY_RUNTIME_DIR (a test run)
// disturbs nothing; a master refuses a pid file a live master holds; stale pid files are cleaned. Real masters,
// real CLI; this file's runtime dir is its own (scratch.ts), never the user's.
import t from 'tap'
import { reapOnExit, SCRATCH_RUN, scratchDir } from '../helpers/scratch.js'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { CLI, ROOT, startOnFreePort, startProxy, type Proxy } from '../helpers/proxy.js'
import { runCli } from '../fixtures/supervisor/master.js'
import { controlSocketPath, readPidFile, writePidFile } from '../../src/supervisor/pid-file.js'

const config = (listen: string, extra = '') => `listen: ${listen}
workers: 1
drain_timeout: 5s
admin: { listen: 127.0.0.1:0 }
log: { level: info }
${extra}upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub }
`

function write(name: string, yaml: string): string {
  const file = path.join(scratchDir('cfg-'), name)
  writeFileSync(file, yaml)
  return file
}

const started: Proxy[] = []
t.teardown(() => Promise.all(started.map((p) => p.stop())))

async function master(file: string, env: NodeJS.ProcessEnv = {}): Promise<Proxy> {
  const p = await startProxy(file, { env })
  started.push(p)
  return p
}

const pidFileOf = (port: number) => path.join(SCRATCH_RUN, `leaky-127.0.0.1-${port}.pid`)
const fixed = async (name: string) => {
  const dir = scratchDir('cfg-')
  const r = await startOnFreePort((port) => {
    const file = path.join(dir, name)
    writeFileSync(file, config(`127.0.0.1:${port}`))
    return file
  })
  started.push(r.proxy)
  return r
}
const [{ proxy: a, port: portA, file: fileA }, { proxy: b, port: portB, file: fileB }] = await Promise.all([fixed('A.yaml'), fixed('B.yaml')])

function row(out: string, pid: number): string | undefined {
  return out.split('\n').find((l) => l.startsWith(`${pid} `))
}

t.test('two masters: one pid file each, named by listen address; `leaky status` lists both', async (t) => {
  t.equal(readPidFile(pidFileOf(portA)), a.child.pid)
  t.equal(readPidFile(pidFileOf(portB)), b.child.pid)
  t.ok(existsSync(controlSocketPath(pidFileOf(portA), a.child.pid!)), 'control socket beside it')
  const r = await runCli(['status'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^PID +LISTEN +CONFIG +PID FILE\n/)
  t.match(row(r.stdout, a.child.pid!), new RegExp(`127\\.0\\.0\\.1:${portA} +${fileA} +${pidFileOf(portA)}$`))
  t.match(row(r.stdout, b.child.pid!), new RegExp(`127\\.0\\.0\\.1:${portB} +${fileB} +${pidFileOf(portB)}$`))
  t.notMatch(r.stdout, /GEN +PID/, 'several: the list only, no per-master table')
})

t.test('a test run in between, with its own LEAKY_RUNTIME_DIR, does not disturb discovery', async (t) => {
  const elsewhere = scratchDir('other-run-')
  const other = await master(write('other.yaml', config('127.0.0.1:0')), { LEAKY_RUNTIME_DIR: elsewhere })
  t.same(readdirSync(elsewhere).filter((n) => n.endsWith('.pid')), [`leaky-127.0.0.1-0-${other.child.pid}.pid`], 'its pid file is in its own runtime dir')
  const during = await runCli(['status'])
  t.equal(during.code, 0, during.stderr)
  t.notOk(row(during.stdout, other.child.pid!), 'not seen from here')
  t.ok(row(during.stdout, a.child.pid!) && row(during.stdout, b.child.pid!))
  t.equal(await other.stop(), 0)
  t.same(readdirSync(elsewhere), [], 'it removed its pid file and control socket on exit')
  const after = await runCli(['status'])
  t.ok(row(after.stdout, a.child.pid!) && row(after.stdout, b.child.pid!), 'A and B are still found')
})

t.test('a master refuses the pid file of a live master: one line naming the file and the pid, exit 1', async (t) => {
  const sameAddress = write('B-again.yaml', config(`127.0.0.1:${portB}`))
  const sameFile = write('B-file.yaml', config('127.0.0.1:0', `pid_file: ${pidFileOf(portB)}\n`))
  for (const file of [sameAddress, sameFile]) {
    const child = reapOnExit(spawn(process.execPath, [CLI, 'start', '-c', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }))
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const [code] = await once(child, 'exit')
    t.equal(code, 1, file)
    t.equal(stderr, `leaky: the pid file ${pidFileOf(portB)} belongs to the running leaky master ${b.child.pid}: stop it (leaky stop --pid ${b.child.pid}) or give this config another listen address or its own pid_file\n`)
  }
  t.equal(readPidFile(pidFileOf(portB)), b.child.pid, 'B keeps its pid file')
  const r = await request(`http://127.0.0.1:${portB}/v1/models`)
  await r.body.text()
  t.equal(r.statusCode, 200, 'and keeps serving')
})

t.test('stale pid files are ignored and removed', async (t) => {
  const dead = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await once(dead, 'exit')
  const stale = path.join(SCRATCH_RUN, 'leaky-127.0.0.1-1.pid')
  writePidFile(stale, dead.pid!)
  writeFileSync(controlSocketPath(stale, dead.pid!), '')
  const r = await runCli(['status'])
  t.equal(r.code, 0, r.stderr)
  t.notOk(row(r.stdout, dead.pid!))
  t.notOk(existsSync(stale), 'pid file removed')
  t.notOk(existsSync(controlSocketPath(stale, dead.pid!)), 'with its socket')
})

t.test('with two running, `leaky stop` and `leaky reload` refuse and list them; nothing is stopped', async (t) => {
  for (const cmd of ['stop', 'reload']) {
    const r = await runCli([cmd])
    t.equal(r.code, 1, cmd)
    t.match(r.stderr, /^leaky: 2 masters are running; pass -c FILE, --pid-file FILE or --pid PID:\n/, cmd)
    t.ok(row(r.stderr, a.child.pid!) && row(r.stderr, b.child.pid!), `${cmd}: both listed`)
  }
  t.equal(a.child.exitCode, null)
  t.equal(b.child.exitCode, null)
})

t.test('a port-0 master: its pid file carries its pid; `-c` finds it by its config file', async (t) => {
  const file = write('zero.yaml', config('127.0.0.1:0'))
  const z = await master(file)
  t.ok(existsSync(path.join(SCRATCH_RUN, `leaky-127.0.0.1-0-${z.child.pid}.pid`)))
  const st = await runCli(['status', '-c', file])
  t.equal(st.code, 0, st.stderr)
  t.match(st.stdout, new RegExp(`master pid ${z.child.pid} .* config ${file}`))
  const list = await runCli(['status'])
  t.match(row(list.stdout, z.child.pid!), new RegExp(`127\\.0\\.0\\.1:${z.port} `), 'listed with the port it got')
  const stop = await runCli(['stop', '-c', file])
  t.equal(stop.code, 0, stop.stderr)
  t.equal(await z.exited, 0)
})

t.test('`leaky stop -c A.yaml` stops A only; `leaky status` still finds B, and commands act on it alone', async (t) => {
  const r = await runCli(['stop', '-c', fileA])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, `stopped (master ${a.child.pid})\n`)
  t.equal(await a.exited, 0)
  t.notOk(existsSync(pidFileOf(portA)), 'A removed its pid file')
  t.notOk(existsSync(controlSocketPath(pidFileOf(portA), a.child.pid!)), 'and its control socket')
  t.equal(b.child.exitCode, null, 'B runs on')
  const st = await runCli(['status'])
  t.equal(st.code, 0, st.stderr)
  t.ok(row(st.stdout, b.child.pid!))
  t.notOk(row(st.stdout, a.child.pid!))
  t.match(st.stdout, new RegExp(`master pid ${b.child.pid} .*\\nGEN +PID`), 'just one: its table follows')
  const json = await runCli(['status', '--json'])
  t.equal(JSON.parse(json.stdout).master.pid, b.child.pid)
  const reload = await runCli(['reload'])
  t.equal(reload.code, 0, reload.stderr)
  t.match(reload.stdout, /^reloaded: generation 1/)
})

t.test('the last one: `leaky stop` stops it; then nothing is found and the runtime dir is empty', async (t) => {
  const r = await runCli(['stop'])
  t.equal(r.code, 0, r.stderr)
  t.equal(await b.exited, 0)
  const st = await runCli(['status'])
  t.equal(st.code, 1)
  t.equal(st.stderr, `leaky: no running master found (looked in ${SCRATCH_RUN}); pass -c FILE, --pid-file FILE or --pid PID\n`)
  t.same(readdirSync(SCRATCH_RUN), [])
})
