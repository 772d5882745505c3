// The admin listener on the generation's main thread. node:http, not uWS, on purpose: health checkers that speak
// HTTP/1.0 (which uWS does not serve at all) must be able to reach /live and /ready.
import http from 'node:http'

export interface AdminStatus {
  live(): boolean
  ready(): { ready: boolean; body: Record<string, unknown> }
}

export class AdminServer {
  readonly #server: http.Server
  readonly #status: AdminStatus

  constructor(status: AdminStatus) {
    this.#status = status
    this.#server = http.createServer((req, res) => this.handle(req, res))
    this.#server.keepAliveTimeout = 5_000
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject)
        resolve((this.#server.address() as { port: number }).port)
      })
    })
  }

  close(): Promise<void> {
    this.#server.closeAllConnections()
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]
    switch (path) {
      case '/live':
        return send(res, this.#status.live() ? 200 : 503, { status: this.#status.live() ? 'ok' : 'down' })
      case '/ready': {
        const r = this.#status.ready()
        return send(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', ...r.body })
      }
      default:
        return send(res, 404, { error: { message: `no admin endpoint ${path}`, type: 'invalid_request_error', code: 'LEAKY_NO_ROUTE' } })
    }
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}
