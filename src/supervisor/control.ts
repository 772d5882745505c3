// The master's control socket: how `leaky reload | upgrade | stop | status` get an answer, where a signal could only
// ask. A unix socket beside the pid file (mode 0600: only the service's user, and root, may use it); one JSON line
// in, one JSON line out, then the connection closes.
import net from 'node:net'
import { unlinkSync } from 'node:fs'

export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'reload' }
  | { cmd: 'upgrade' }
  | { cmd: 'stop' }
  /** test hook, refused unless the master runs with LEAKY_TEST_HOOKS=1 */
  | { cmd: 'crash-worker'; index: number }

const MAX_LINE = 64 * 1024

export class ControlServer {
  readonly path: string
  readonly #server: net.Server

  constructor(path: string, handle: (req: ControlRequest) => Promise<unknown>) {
    this.path = path
    this.#server = net.createServer((sock) => {
      let buf = ''
      sock.setEncoding('utf8')
      sock.on('error', () => undefined)
      sock.on('data', (d: string) => {
        buf += d
        if (buf.length > MAX_LINE) return void sock.destroy()
        const i = buf.indexOf('\n')
        if (i < 0) return
        let req: ControlRequest
        try {
          req = JSON.parse(buf.slice(0, i)) as ControlRequest
        } catch {
          return void sock.end(`${JSON.stringify({ ok: false, error: 'bad request: not JSON' })}\n`)
        }
        handle(req).then(
          (r) => sock.end(`${JSON.stringify(r)}\n`),
          (err: Error) => sock.end(`${JSON.stringify({ ok: false, error: err.message })}\n`),
        )
      })
    })
  }

  listen(): Promise<void> {
    try {
      unlinkSync(this.path)
    } catch {
      // no stale socket
    }
    return new Promise((resolve, reject) => {
      // the socket file is created with the umask's mode: make it 0600 from the start, not chmod it after
      const old = process.umask(0o177)
      this.#server.once('error', (err) => {
        process.umask(old)
        reject(err)
      })
      this.#server.listen(this.path, () => {
        process.umask(old)
        resolve()
      })
    })
  }

  close(): void {
    this.#server.close()
    try {
      unlinkSync(this.path)
    } catch {
      // already gone
    }
  }
}

/** Send one request to a master and wait for its answer (a reload or upgrade can take a while). */
export function controlRequest(path: string, req: ControlRequest, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path)
    let buf = ''
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new Error(`no answer from the master within ${Math.round(timeoutMs / 1000)} s`))
    }, timeoutMs)
    sock.setEncoding('utf8')
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`))
    sock.on('data', (d: string) => (buf += d))
    sock.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    sock.on('end', () => {
      clearTimeout(timer)
      try {
        resolve(JSON.parse(buf))
      } catch {
        reject(new Error('the master closed the control connection without an answer'))
      }
    })
  })
}
