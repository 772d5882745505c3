// The admin listener on the generation's main thread. node:http, not uWS, on purpose: health checkers that speak
// HTTP/1.0 (which uWS does not serve at all) must be able to reach /live and /ready.
//   /live /ready        always open
//   /metrics            Prometheus text; open unless admin.metrics_public is false
//   /status             the status page (HTML); /status?token=… signs a browser in with a cookie
//   /status.json        what the page draws
// Everything but /live and /ready (and public /metrics) needs admin.token when one is set.
import http from 'node:http'
import https from 'node:https'
import type { TLSSocket } from 'node:tls'
import { adminTlsOptions, type AdminTls } from './tls.js'
import { authorized, sessionCookie, tokenMatches, type AdminAccess } from './auth.js'
import { statusPage } from './status-page.js'

export type { AdminAccess }

export interface AdminStatus {
  live(): boolean
  ready(): { ready: boolean; body: Record<string, unknown> }
  /** the admin settings in force; read per request, so a reload that changes the token applies at once */
  access?(): AdminAccess
  metrics?(): Promise<{ contentType: string; body: string }>
  status?(): Record<string, unknown>
  /** POST /admin/cache/purge (src/cache/purge.ts) */
  cachePurge?(req: http.IncomingMessage, res: http.ServerResponse): void
}

const NO_ACCESS: AdminAccess = { token: undefined, metricsPublic: true }

export class AdminServer {
  readonly #server: http.Server
  readonly #status: AdminStatus

  /** the client_cert mode the server was built with: it cannot change without a new server */
  readonly #mode: string

  constructor(status: AdminStatus, tls?: AdminTls) {
    this.#status = status
    this.#mode = tls === undefined ? 'plain' : (tls.client_cert ?? 'none')
    if (tls === undefined) {
      this.#server = http.createServer((req, res) => this.handle(req, res))
    } else {
      this.#server = https.createServer(adminTlsOptions(tls), (req, res) => this.handle(req, res))
      // client_cert: optional lets a client without a certificate in, but one whose certificate does not verify is
      // cut at once, as uWS does on the proxy listener (node's rejectUnauthorized: false would let it through)
      this.#server.on('secureConnection', (s: TLSSocket) => {
        if (!s.authorized && s.getPeerCertificate().raw !== undefined) s.destroy()
      })
    }
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

  /**
   * New certificates on reload: swapped in for new connections (open ones keep theirs). Switching TLS on or off, or
   * changing client_cert, needs a new listener: that waits for an upgrade, and the message says so.
   */
  setTls(tls: AdminTls | undefined): string | null {
    const mode = tls === undefined ? 'plain' : (tls.client_cert ?? 'none')
    if (mode !== this.#mode) return 'admin.tls: switching TLS on or off or changing client_cert takes effect with an upgrade (leaky upgrade)'
    if (tls !== undefined) (this.#server as https.Server).setSecureContext(adminTlsOptions(tls))
    return null
  }

  close(): Promise<void> {
    this.#server.closeAllConnections()
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q < 0 ? url : url.slice(0, q)
    switch (path) {
      case '/live':
        return send(res, this.#status.live() ? 200 : 503, { status: this.#status.live() ? 'ok' : 'down' })
      case '/ready': {
        const r = this.#status.ready()
        return send(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', ...r.body })
      }
    }
    const access = this.#status.access?.() ?? NO_ACCESS
    if (path === '/metrics' && access.metricsPublic) return this.#metrics(res)
    if (path === '/status' && q >= 0 && access.token) {
      const presented = new URLSearchParams(url.slice(q + 1)).get('token')
      if (presented !== null) {
        if (!tokenMatches(presented, access.token)) return unauthorized(res)
        res.writeHead(303, { location: '/status', 'set-cookie': sessionCookie(access.token), 'cache-control': 'no-store', 'content-length': 0 })
        return void res.end()
      }
    }
    if (!authorized(req, access.token)) return unauthorized(res)
    switch (path) {
      case '/metrics':
        return this.#metrics(res)
      case '/status': {
        const page = statusPage()
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-length': Buffer.byteLength(page.html),
          'content-security-policy': page.csp,
          'x-content-type-options': 'nosniff',
          'referrer-policy': 'no-referrer',
          'cache-control': 'no-store',
        })
        return void res.end(page.html)
      }
      case '/status.json':
        if (!this.#status.status) break
        return send(res, 200, this.#status.status())
      case '/admin/cache/purge':
        if (!this.#status.cachePurge) break
        return this.#status.cachePurge(req, res)
    }
    return send(res, 404, { error: { message: `no admin endpoint ${path}`, type: 'invalid_request_error', code: 'LEAKY_NO_ROUTE' } })
  }

  #metrics(res: http.ServerResponse): void {
    if (!this.#status.metrics) {
      return send(res, 404, { error: { message: 'metrics are off', type: 'invalid_request_error', code: 'LEAKY_NO_ROUTE' } })
    }
    this.#status.metrics().then(
      (m) => {
        res.writeHead(200, { 'content-type': m.contentType, 'content-length': Buffer.byteLength(m.body), 'cache-control': 'no-store' })
        res.end(m.body)
      },
      (err: Error) => send(res, 500, { error: { message: `metrics failed: ${err.message}`, type: 'server_error', code: 'LEAKY_INTERNAL' } }),
    )
  }
}

function unauthorized(res: http.ServerResponse): void {
  const text = JSON.stringify({ error: { message: 'admin token required: Authorization: Bearer <admin.token> (a browser: /status?token=…)', type: 'invalid_request_error', code: 'LEAKY_UNAUTHORIZED' } })
  res.writeHead(401, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'www-authenticate': 'Bearer realm="leaky-admin"',
    'cache-control': 'no-store',
  })
  res.end(text)
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}
