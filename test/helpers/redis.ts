// A real redis-server for tests: spawned on a free 127.0.0.1 port with persistence off, ready once it answers PING,
// stopped by its PID. stop() then start() again brings it back on the same port (empty: nothing is saved), which is
// how tests play "Redis died and came back".
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, constants } from 'node:fs'
import net from 'node:net'
import { reapOnExit } from './scratch.js'

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server'

export class RedisProcess {
  port = 0
  private proc: ChildProcess | null = null

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get pid(): number {
    return this.proc?.pid ?? 0
  }

  /** Start (on the previous port if there was one, else a free one) and wait until it answers PING. */
  async start(): Promise<void> {
    requireRedisServer()
    for (let attempt = 0; ; attempt++) {
      const port = this.port !== 0 ? this.port : await freePort()
      const proc = reapOnExit(spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        { stdio: ['ignore', 'pipe', 'pipe'] }))
      let out = ''
      const ready = new Promise<boolean>((resolve) => {
        proc.stdout!.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('Ready to accept connections')) resolve(true)
        })
        proc.once('exit', () => resolve(false))
      })
      if (await ready) {
        this.proc = proc
        this.port = port
        if (await ping(port)) return
        throw new Error(`redis-server on ${port} does not answer PING`)
      }
      // the port was taken between freePort() and the bind (or is still in TIME_WAIT use after a stop): try again
      if (attempt >= 5) throw new Error(`redis-server did not start: ${out.slice(-500)}`)
      if (this.port !== 0) await new Promise((r) => setTimeout(r, 100)) // same port: give the kernel a moment
    }
  }

  /** Kill it (SIGKILL by default: a crash, nothing flushed) and wait for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc
    this.proc = null
    await stopProcess(p, signal)
  }
}

/** A missing redis-server is one clear error naming it and its install, not an unhandled spawn ENOENT. */
function requireRedisServer(): void {
  try {
    accessSync(REDIS_SERVER, constants.X_OK)
  } catch {
    throw new Error(`redis-server is not installed (no executable ${REDIS_SERVER}): run \`npm run test:all\` as root, ` +
      'or apt-get install redis-server, or set REDIS_SERVER to its path')
  }
}

/** A started redis-server; the test must call stop() (t.teardown). */
export async function startRedis(): Promise<RedisProcess> {
  const r = new RedisProcess()
  await r.start()
  return r
}

async function freePort(): Promise<number> {
  const srv = net.createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const port = (srv.address() as net.AddressInfo).port
  srv.close()
  await once(srv, 'close')
  return port
}

/** One PING over a raw socket: true on +PONG. */
export async function ping(port: number): Promise<boolean> {
  const sock = net.connect(port, '127.0.0.1')
  try {
    await once(sock, 'connect')
    sock.write('PING\r\n')
    const [d] = (await once(sock, 'data')) as [Buffer]
    return d.toString().startsWith('+PONG')
  } catch {
    return false
  } finally {
    sock.destroy()
  }
}

/** Signal a process we started, by its PID, and wait for its exit (nothing to do if it is gone already). */
export async function stopProcess(p: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (p === null || p.exitCode !== null || p.signalCode !== null) return
  const exited = once(p, 'exit')
  process.kill(p.pid!, signal)
  await exited
}
