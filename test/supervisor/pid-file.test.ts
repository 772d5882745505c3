// Pid file and control socket: the runtime dir rules, one name per listen address, taking a pid file (exclusive,
// stale ones replaced, a live master's refused), removal only by its owner, finding a control socket from a pid
// alone, and reading a config's listen/pid_file without validating it.
import t, { type Test } from 'tap'
import { SCRATCH_RUN, scratchDir } from '../helpers/scratch.js'
import net from 'node:net'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, existsSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import {
  alive, controlSocketPath, defaultPidFile, ensureRuntimeDir, findControlSocket, legacyPidFiles, pidFileName, readPidFile, removePidFile,
  runtimeDir, runtimeDirCandidates, takePidFile, writePidFile,
} from '../../src/supervisor/pid-file.js'
import { scanPidFiles } from '../../src/supervisor/discover.js'
import { readConfigHints } from '../../src/supervisor/config-hints.js'

const uid = process.getuid!()

/** A live process whose command line reads like `leaky start` (so looksLikeMaster says yes), stopped at teardown. */
async function fakeMaster(t: Test): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'process.stdout.write("up\\n"); setInterval(() => {}, 1e9)', 'leaky', 'start'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
  })
  await once(child.stdout!, 'data')
  return child.pid!
}

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await once(child, 'exit')
  return child.pid!
}

t.test('runtime dir: $LEAKY_RUNTIME_DIR, $RUNTIME_DIRECTORY, /run/leaky when writable, else $TMPDIR/leaky-UID', async (t) => {
  const writableRun = scratchDir('run-')
  const none = path.join(scratchDir(), 'absent')
  t.equal(runtimeDir({ LEAKY_RUNTIME_DIR: '/x', RUNTIME_DIRECTORY: '/y' }, writableRun), '/x')
  t.equal(runtimeDir({ RUNTIME_DIRECTORY: '/run/a:/run/b' }, writableRun), '/run/a', 'first of several')
  t.equal(runtimeDir({ TMPDIR: '/t' }, writableRun), writableRun)
  t.equal(runtimeDir({ TMPDIR: '/t/' }, none), `/t/leaky-${uid}`, 'no /run/leaky: the temp dir, per user')
  t.equal(runtimeDir({}, none), `/tmp/leaky-${uid}`)
  t.same(runtimeDirCandidates({ LEAKY_RUNTIME_DIR: '/x', RUNTIME_DIRECTORY: '/y' }), ['/x'], 'an explicit runtime dir is the only place looked in')
  t.same(runtimeDirCandidates({ RUNTIME_DIRECTORY: '/y', TMPDIR: '/t' }, '/run/leaky'), ['/y', '/run/leaky', `/t/leaky-${uid}`])
  t.same(runtimeDirCandidates({ RUNTIME_DIRECTORY: '/run/leaky', TMPDIR: '/t' }, '/run/leaky'), ['/run/leaky', `/t/leaky-${uid}`], 'no duplicates')
  t.same(legacyPidFiles({ TMPDIR: '/t' }, '/run/leaky'), ['/run/leaky/leaky.pid', `/t/leaky-${uid}.pid`], 'pid files of masters started by older versions')
  t.same(legacyPidFiles({ LEAKY_RUNTIME_DIR: '/x' }), [])
})

t.test('one pid file name per listen address; port 0 carries the pid', async (t) => {
  t.equal(pidFileName('127.0.0.1:8080', 42), 'leaky-127.0.0.1-8080.pid')
  t.equal(pidFileName('0.0.0.0:8080', 42), 'leaky-0.0.0.0-8080.pid')
  t.equal(pidFileName('[::1]:8080', 42), 'leaky-::1-8080.pid')
  t.equal(pidFileName('localhost:9000', 42), 'leaky-localhost-9000.pid')
  t.equal(pidFileName('127.0.0.1:0', 42), 'leaky-127.0.0.1-0-42.pid')
  t.not(pidFileName('127.0.0.1:0', 42), pidFileName('127.0.0.1:0', 43), 'two port-0 masters never share one')
  t.equal(defaultPidFile('127.0.0.1:8080', { LEAKY_RUNTIME_DIR: '/x' }), '/x/leaky-127.0.0.1-8080.pid')
  t.equal(controlSocketPath('/x/leaky-127.0.0.1-8080.pid', 77), '/x/leaky-77.sock')
})

t.test('the runtime dir is created 0700; a shared-temp one that is not ours and closed is refused', async (t) => {
  const tmp = scratchDir('tmp-')
  const made = path.join(tmp, 'deep', 'run')
  ensureRuntimeDir(made, { TMPDIR: tmp })
  t.equal(statSync(made).mode & 0o777, 0o700)
  const mine = path.join(tmp, `leaky-${uid}`)
  ensureRuntimeDir(mine, { TMPDIR: tmp })
  t.equal(statSync(mine).mode & 0o777, 0o700)
  chmodSync(mine, 0o777)
  t.throws(() => ensureRuntimeDir(mine, { TMPDIR: tmp }), /refusing the runtime directory .* mode 0700/)
})

t.test('take: exclusive; a stale one (dead pid, reused pid, our own) replaced; a live master\'s refused', async (t) => {
  const dir = scratchDir()
  const file = path.join(dir, 'leaky-127.0.0.1-8080.pid')
  takePidFile(file, 4242)
  t.equal(readPidFile(file), 4242)
  t.same(readdirSync(dir), ['leaky-127.0.0.1-8080.pid'], 'no temp file left')

  const dead = await deadPid()
  writePidFile(file, dead)
  writeFileSync(controlSocketPath(file, dead), '')
  takePidFile(file, 4243)
  t.equal(readPidFile(file), 4243, 'a dead master\'s pid file is taken over')
  t.notOk(existsSync(controlSocketPath(file, dead)), 'with the socket it left')

  writePidFile(file, process.pid)
  takePidFile(file, 4244)
  t.equal(readPidFile(file), 4244, 'a live process that is not `leaky start` (a reused pid) does not hold it')

  const live = await fakeMaster(t)
  writePidFile(file, live)
  t.throws(() => takePidFile(file, 4245), new RegExp(`the pid file ${file} belongs to the running leaky master ${live}`))
  t.equal(readPidFile(file), live, 'left as it was')
  t.same(readdirSync(dir), ['leaky-127.0.0.1-8080.pid'], 'no temp file left after a refusal')
})

t.test('remove only when it is still ours', async (t) => {
  const file = path.join(scratchDir(), 'leaky.pid')
  t.equal(readPidFile(file), null, 'missing')
  writePidFile(file, 4242)
  removePidFile(file, 1111)
  t.ok(existsSync(file), 'another master\'s pid file is left alone')
  removePidFile(file, 4242)
  t.notOk(existsSync(file))
  writeFileSync(file, 'not a pid\n')
  t.equal(readPidFile(file), null)
  t.ok(alive(process.pid))
})

t.test('scan: live masters listed, stale pid files and their sockets removed, files that are not pids left alone', async (t) => {
  const dir = scratchDir()
  const live = await fakeMaster(t)
  const dead = await deadPid()
  writePidFile(path.join(dir, 'leaky-127.0.0.1-1.pid'), live)
  writePidFile(path.join(dir, 'leaky-127.0.0.1-2.pid'), dead)
  writeFileSync(controlSocketPath(path.join(dir, 'x'), dead), '')
  writeFileSync(path.join(dir, 'leaky-127.0.0.1-3.pid'), 'garbage')
  writeFileSync(path.join(dir, 'unrelated.pid'), `${live}\n`)
  const legacy = path.join(scratchDir(), 'leaky.pid')
  writePidFile(legacy, live)
  t.same(scanPidFiles([dir, path.join(dir, 'absent')], [legacy]), [{ pid: live, pidFile: path.join(dir, 'leaky-127.0.0.1-1.pid') }], 'one master, seen twice, listed once')
  t.same(readdirSync(dir).sort(), ['leaky-127.0.0.1-1.pid', 'leaky-127.0.0.1-3.pid', 'unrelated.pid'])
})

t.test('control socket: found from the pid alone wherever it is', async (t) => {
  const sock = controlSocketPath(path.join(scratchDir('s-'), 'x.pid'), process.pid)
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(sock, r))
  t.teardown(() => server.close())
  t.equal(findControlSocket(process.pid, []), sock, 'found through /proc/self/fd and /proc/net/unix')
  t.equal(findControlSocket(process.pid, [path.dirname(sock)]), sock, 'by name in a runtime dir')
  t.equal(findControlSocket(process.pid + 1_000_000, []), null, 'no such process: null, not a throw')
})

t.test('a stale pid file naming a reused pid is refused, never signalled', async (t) => {
  const { locateMaster } = await import('../../src/supervisor/commands.js')
  const { looksLikeMaster } = await import('../../src/supervisor/pid-file.js')
  t.notOk(looksLikeMaster(process.pid), 'this test process is not `leaky start`')
  const file = path.join(scratchDir(), 'leaky.pid')
  writePidFile(file, process.pid)
  await t.rejects(locateMaster({ pidFile: file }), /not a running leaky master \(stale pid file\)/)
  await t.rejects(locateMaster({ pid: String(process.pid) }), /is not a leaky master/)
  t.equal(process.env.LEAKY_RUNTIME_DIR, SCRATCH_RUN, 'this file\'s own runtime dir, not the user\'s')
  await t.rejects(locateMaster({}), /no running master found \(looked in .*\/run\)/)
})

t.test('config hints: listen and pid_file from the YAML, whatever else is wrong with it', async (t) => {
  const dir = scratchDir()
  const write = (name: string, text: string) => {
    const f = path.join(dir, name)
    writeFileSync(f, text)
    return f
  }
  t.same(readConfigHints(write('a.yaml', 'listen: 127.0.0.1:9000\nworkers: lots\nroutes: [{ upstream: nope }]\n')), { pidFile: undefined, listen: '127.0.0.1:9000' }, 'invalid elsewhere')
  t.same(readConfigHints(write('b.yaml', 'listen: ":9000"\npid_file: /x/y.pid\n')), { pidFile: '/x/y.pid', listen: '0.0.0.0:9000' }, 'normalised as the master has it')
  t.same(readConfigHints(write('c.yaml', 'upstreams: {}\n')), { pidFile: undefined, listen: '0.0.0.0:8080' }, 'the default listen')
  const env = write('d.yaml', 'listen: "127.0.0.1:${env:LEAKY_T_PORT}"\npid_file: "${env:LEAKY_T_DIR}/m.pid"\nadmin: { token: "${env:LEAKY_T_UNSET}" }\n')
  t.same(readConfigHints(env, {}), { pidFile: null, listen: null }, 'references this shell cannot resolve: unknown, not an error')
  t.same(readConfigHints(env, { LEAKY_T_PORT: '9001', LEAKY_T_DIR: '/r' }), { pidFile: '/r/m.pid', listen: '127.0.0.1:9001' })
  t.same(readConfigHints(write('e.yaml', 'listen: 127.0.0.1:9002\nworkers: [\n')), { pidFile: undefined, listen: '127.0.0.1:9002' }, 'a syntax error later in the file')
  t.same(readConfigHints(path.join(dir, 'missing.yaml')), { pidFile: undefined, listen: null })
})
