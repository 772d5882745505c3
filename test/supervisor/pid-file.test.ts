// Pid file and control socket location: the default path rules, atomic write, removal only by its owner, and
// finding a master's control socket from its pid alone (/proc/PID/fd → /proc/net/unix).
import t from 'tap'
import net from 'node:net'
import { mkdtempSync, writeFileSync, existsSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import {
  controlSocketPath, defaultPidFile, findControlSocket, pidFileCandidates, readPidFile, removePidFile, writePidFile, alive,
} from '../../src/supervisor/pid-file.js'

const uid = process.getuid!()

t.test('default: $RUNTIME_DIRECTORY, else /run/leaky when writable, else the temp dir with the uid', async (t) => {
  t.equal(defaultPidFile({ RUNTIME_DIRECTORY: '/run/leaky-x' }), '/run/leaky-x/leaky.pid')
  t.equal(defaultPidFile({ RUNTIME_DIRECTORY: '/run/a:/run/b' }), '/run/a/leaky.pid', 'first of several')
  const d = defaultPidFile({})
  t.ok(d === '/run/leaky/leaky.pid' || d === path.join(tmpdir(), `leaky-${uid}.pid`), d)
  if (!existsSync('/run/leaky')) t.equal(d, path.join(tmpdir(), `leaky-${uid}.pid`), 'no /run/leaky here: temp dir')
  t.same(pidFileCandidates({ RUNTIME_DIRECTORY: '/run/x' }), ['/run/x/leaky.pid', '/run/leaky/leaky.pid', path.join(tmpdir(), `leaky-${uid}.pid`)])
})

t.test('write, read, and remove only when it is still ours', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'leaky-pid-'))
  const file = path.join(dir, 'leaky.pid')
  t.equal(readPidFile(file), null, 'missing')
  writePidFile(file, 4242)
  t.equal(readPidFile(file), 4242)
  t.same(readdirSync(dir), ['leaky.pid'], 'no temp file left')
  removePidFile(file, 1111)
  t.ok(existsSync(file), 'another master\'s pid file is left alone')
  removePidFile(file, 4242)
  t.notOk(existsSync(file))
  writeFileSync(file, 'not a pid\n')
  t.equal(readPidFile(file), null)
  t.ok(alive(process.pid))
})

t.test('control socket: beside the pid file, named by pid; found from the pid alone wherever it is', async (t) => {
  t.equal(controlSocketPath('/run/leaky/leaky.pid', 77), '/run/leaky/leaky-77.sock')
  const dir = mkdtempSync(path.join(tmpdir(), 'leaky-sock-'))
  const sock = controlSocketPath(path.join(dir, 'x.pid'), process.pid)
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(sock, r))
  t.teardown(() => server.close())
  t.equal(findControlSocket(process.pid, {}), sock, 'found through /proc/self/fd and /proc/net/unix')
  t.equal(findControlSocket(process.pid + 1_000_000, {}), null, 'no such process: null, not a throw')
})

t.test('a stale pid file naming a reused pid is refused, never signalled', async (t) => {
  const { findMaster, looksLikeMaster } = await import('../../src/supervisor/commands.js')
  t.notOk(looksLikeMaster(process.pid), 'this test process is not `leaky start`')
  const dir = mkdtempSync(path.join(tmpdir(), 'leaky-pid-'))
  const file = path.join(dir, 'leaky.pid')
  writePidFile(file, process.pid)
  t.throws(() => findMaster({ pidFile: file }), /not a running leaky master \(stale pid file\)/)
  t.throws(() => findMaster({ pid: String(process.pid) }), /is not a leaky master/)
})
