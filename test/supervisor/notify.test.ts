// systemd readiness (Type=notify): with $NOTIFY_SOCKET set, the master tells systemd READY=1 (naming itself as the
// main pid) once its first generation serves, and STOPPING=1 when it drains. systemd-notify is the real one; the
// socket is a stand-in that reads datagrams the way systemd does (it also answers systemd-notify's barrier).
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startMaster, tempDir } from '../fixtures/supervisor/master.js'

const missing = ['systemd-notify', 'python3'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0)
if (missing.length > 0) {
  t.skip(`needs ${missing.join(' and ')} on PATH`)
} else {
  t.test('READY=1 with MAINPID once serving, STOPPING=1 on stop', async (t) => {
    const sock = path.join(tempDir(), 'notify.sock')
    const script = fileURLToPath(new URL('../fixtures/supervisor/notify-socket.py', import.meta.url))
    const fake = spawn('python3', [script, sock], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.teardown(() => fake.kill())
    const messages: string[][] = []
    let listening = false
    const waiters: Array<() => void> = []
    let buf = ''
    fake.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const m = JSON.parse(buf.slice(0, i)) as { lines?: string[]; listening?: string }
        buf = buf.slice(i + 1)
        if (m.listening !== undefined) listening = true
        if (m.lines !== undefined) messages.push(m.lines)
        for (const w of waiters.splice(0)) w()
      }
    })
    const until = async (pred: () => boolean) => {
      while (!pred()) await new Promise<void>((r) => waiters.push(r))
    }
    await until(() => listening)
    const m = await startMaster(`upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub }
`, { NOTIFY_SOCKET: sock })
    const has = (line: string) => messages.some((lines) => lines.includes(line))
    await until(() => has('READY=1'))
    t.ok(has(`MAINPID=${m.pid}`), 'the master names itself as the main pid')
    t.ok(messages.some((lines) => lines.some((l) => /^STATUS=serving, generation 1/.test(l))), 'a STATUS line')
    t.notOk(messages.some((lines) => lines.includes('STOPPING=1')))
    t.equal(await m.proxy.stop(), 0)
    await until(() => has('STOPPING=1'))
    t.pass('STOPPING=1 on stop')
  })
}
