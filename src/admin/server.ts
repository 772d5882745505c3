// The admin listener on the generation's main thread. node:http, not uWS, on purpose: health checkers that speak
// HTTP/1.0 (which uWS does not serve at all) must be able to reach /live and /ready. Every endpoint is described in
// the OpenAPI document served at /admin/openapi.json (src/admin/openapi.ts; test/admin/openapi.test.ts checks real
// answers against it).
//   open          GET /live, GET /ready, GET /admin/openapi.json (and GET /metrics while admin.metrics_public)
//   viewer        GET /metrics, GET /status (/status?token=… signs a browser in with a cookie), GET /status.json,
//                 GET /admin/usage
//   operator      POST /admin/reload, POST /admin/drain
//   admin         GET|POST /admin/keys, DELETE /admin/keys/{id}, POST /admin/keys/{id}/rotate, POST /admin/cache/purge
// Calls to /admin/* are audited one by one; failed authentications are counted per source and audited per minute.
import http from 'node:http'
import https from 'node:https'
import type { TLSSocket } from 'node:tls'
import { adminTlsOptions, type AdminTls } from './tls.js'
import { ERRORS, errorBody, type ErrorCode } from '../errors.js'
import { authConfigured, authenticate, ROLE_RANK, sessionCookie, tokenCaller, type AdminAccess, type Caller, type Role } from './auth.js'
import { AuthGuard } from './guard.js'
import { OPENAPI } from './openapi.js'
import { statusPage } from './status-page.js'
import type { AuditLog } from '../audit/audit-log.js'
import type { KeyResult, KeyService, Actor } from '../identity/key-service.js'
import type { UsageAnswer } from './usage.js'

export type { AdminAccess }
export type AdminCommand = 'reload' | 'drain'

export interface AdminStatus {
  live(): boolean
  ready(): { ready: boolean; body: Record<string, unknown> }
  /** the admin settings in force; read per request, so a reload that changes a token applies at once */
  access?(): AdminAccess
  metrics?(): Promise<{ contentType: string; body: string }>
  status?(): Record<string, unknown>
  /** POST /admin/cache/purge (src/cache/purge.ts) */
  cachePurge?(req: http.IncomingMessage, res: http.ServerResponse): void
  keys?(): KeyService | null
  audit?: AuditLog
  /** reload or drain through the supervisor */
  command?(cmd: AdminCommand, source: string): Promise<{ ok: boolean; [k: string]: unknown }>
  /** this process changed a key: push the list to the workers now */
  onKeysChanged?(): void
  /** GET /admin/usage (src/admin/usage.ts) */
  usage?(params: URLSearchParams): UsageAnswer
}

const NO_ACCESS: AdminAccess = { token: undefined, tokens: [], metrics_public: true, failed_auth: { amount: 10, period_ms: 60_000 } }
/** Largest admin request body (a key's JSON is a few hundred bytes). */
const MAX_BODY = 64 * 1024
const OPENAPI_TEXT = JSON.stringify(OPENAPI)

export class AdminServer {
  readonly #server: http.Server
  readonly #status: AdminStatus
  readonly #guard: AuthGuard

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
    this.#guard = new AuthGuard(status.audit ?? null)
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
    this.#guard.close()
    this.#server.closeAllConnections()
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q < 0 ? url : url.slice(0, q)
    const method = req.method ?? 'GET'
    switch (path) {
      case '/live':
        if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, 'GET, HEAD')
        return send(res, this.#status.live() ? 200 : 503, { status: this.#status.live() ? 'ok' : 'down' })
      case '/ready': {
        if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, 'GET, HEAD')
        const r = this.#status.ready()
        return send(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', ...r.body })
      }
      case '/admin/openapi.json':
        if (method !== 'GET') return notAllowed(res, 'GET')
        return sendText(res, 200, OPENAPI_TEXT)
    }
    const access = this.#status.access?.() ?? NO_ACCESS
    if (path === '/metrics' && access.metrics_public && method === 'GET') return this.#metrics(res)
    const source = req.socket.remoteAddress ?? ''
    const wait = this.#guard.blockedFor(source, access.failed_auth)
    if (wait > 0) {
      this.#guard.failed(source, 'throttled', access.failed_auth)
      return fail(res, 'LEAKY_ADMIN_THROTTLED', undefined, { 'retry-after': String(Math.ceil(wait / 1000)) })
    }
    if (path === '/status' && q >= 0 && authConfigured(access)) {
      const presented = new URLSearchParams(url.slice(q + 1)).get('token')
      if (presented !== null) {
        const c = tokenCaller(access, presented)
        if (c === null) return this.#unauthorized(res, source, 'unknown_token', access)
        res.writeHead(303, { location: '/status', 'set-cookie': sessionCookie(access, c), 'cache-control': 'no-store', 'content-length': 0 })
        return void res.end()
      }
    }
    const a = authenticate(req, access)
    if (!a.ok) return this.#unauthorized(res, source, a.reason, access)
    const caller = a.caller
    switch (path) {
      case '/metrics':
        if (method !== 'GET') return notAllowed(res, 'GET')
        return this.#metrics(res)
      case '/status': {
        if (method !== 'GET') return notAllowed(res, 'GET')
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
        if (method !== 'GET') return notAllowed(res, 'GET')
        return send(res, 200, this.#status.status())
      case '/admin/usage': {
        if (!this.#status.usage) break
        if (method !== 'GET') return notAllowed(res, 'GET')
        const out = this.#status.usage(new URLSearchParams(q < 0 ? '' : url.slice(q + 1)))
        const status = out.ok ? 200 : ERRORS[out.code].status
        this.#status.audit?.write({ event: 'admin', token_id: caller.id, role: caller.role, action: 'usage.report', target: '', method, path, status, result: out.ok ? 'ok' : out.code })
        return out.ok ? send(res, 200, out.report) : fail(res, out.code, out.message)
      }
      case '/admin/cache/purge': {
        if (!this.#status.cachePurge) break
        if (method !== 'POST') return notAllowed(res, 'POST')
        const audit = (status: number, result: string) =>
          this.#status.audit?.write({ event: 'admin', token_id: caller.id, role: caller.role, action: 'cache.purge', target: '', method, path, status, result })
        if (ROLE_RANK[caller.role] < ROLE_RANK.admin) {
          audit(403, 'forbidden')
          return fail(res, 'LEAKY_ADMIN_FORBIDDEN', `role ${caller.role} may not cache.purge (needs admin)`)
        }
        res.once('finish', () => audit(res.statusCode, res.statusCode < 300 ? 'ok' : 'failed'))
        return this.#status.cachePurge(req, res)
      }
    }
    if (path.startsWith('/admin/')) return this.#adminApi(req, res, path, method, caller)
    return fail(res, 'LEAKY_NO_ROUTE', `no admin endpoint ${path}`)
  }

  #unauthorized(res: http.ServerResponse, source: string, reason: string, access: AdminAccess): void {
    this.#guard.failed(source, reason, access.failed_auth)
    const text = errorBody('admin token required: Authorization: Bearer <token> (a browser: /status?token=…)', 'invalid_request_error', 'LEAKY_UNAUTHORIZED')
    res.writeHead(401, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'www-authenticate': 'Bearer realm="leaky-admin"',
      'cache-control': 'no-store',
    })
    res.end(text)
  }

  /** The /admin/* API: role check, then the action; each call is audited with its result. */
  #adminApi(req: http.IncomingMessage, res: http.ServerResponse, path: string, method: string, caller: Caller): void {
    const r = route(path, method)
    if (r === null) return fail(res, 'LEAKY_NO_ROUTE', `no admin endpoint ${path}`)
    if ('allow' in r) return notAllowed(res, r.allow)
    const audit = (status: number, result: string) =>
      this.#status.audit?.write({ event: 'admin', token_id: caller.id, role: caller.role, action: r.action, target: r.target, method, path, status, result })
    if (ROLE_RANK[caller.role] < ROLE_RANK[r.role]) {
      audit(403, 'forbidden')
      return fail(res, 'LEAKY_ADMIN_FORBIDDEN', `role ${caller.role} may not ${r.action} (needs ${r.role})`)
    }
    readJson(req, r.body, (err, body) => {
      if (err !== null) {
        audit(ERRORS[err.code].status, 'bad_request')
        return fail(res, err.code, err.message)
      }
      void this.#act(r, body, caller).then(
        (out) => {
          audit(out.status, out.result)
          send(res, out.status, out.body)
        },
        (e: Error) => {
          audit(500, 'error')
          fail(res, 'LEAKY_INTERNAL', `${r.action} failed: ${e.message}`)
        },
      )
    })
  }

  async #act(r: ApiRoute, body: unknown, caller: Caller): Promise<{ status: number; result: string; body: unknown }> {
    const actor: Actor = { via: 'admin-api', token_id: caller.id, role: caller.role }
    if (r.action === 'reload' || r.action === 'drain') {
      if (!this.#status.command) return shaped('LEAKY_INTERNAL', 'no supervisor runs this generation')
      const out = await this.#status.command(r.action, `admin API (${caller.id})`)
      if (r.action === 'reload' && !out.ok && Array.isArray(out.errors) && out.generation !== null) {
        return { status: 422, result: 'failed', body: { ...out, error: { message: ERRORS.LEAKY_RELOAD_FAILED.message, type: ERRORS.LEAKY_RELOAD_FAILED.type, code: 'LEAKY_RELOAD_FAILED' } } }
      }
      if (!out.ok) return shaped('LEAKY_INTERNAL', String(out.error ?? (out.errors as string[] | undefined)?.join('; ') ?? `${r.action} failed`))
      return { status: r.action === 'drain' ? 202 : 200, result: 'ok', body: out }
    }
    const keys = this.#status.keys?.() ?? null
    if (keys === null) return shaped('LEAKY_KEYS_DISABLED', 'runtime keys are not available in this process')
    let out: KeyResult
    switch (r.action) {
      case 'keys.list':
        return { status: 200, result: 'ok', body: { enabled: keys.disabled === null, disabled_reason: keys.disabled, keys: keys.list() } }
      case 'keys.create':
        out = keys.create(body, actor)
        break
      case 'keys.revoke':
        out = keys.revoke(r.target, actor)
        break
      case 'keys.rotate':
        out = keys.rotate(r.target, body, actor)
        break
    }
    if (!out.ok) return shaped(out.code, out.message)
    this.#status.onKeysChanged?.()
    return { status: out.status, result: 'ok', body: out.secret === undefined ? { key: out.key } : { key: out.key, secret: out.secret } }
  }

  #metrics(res: http.ServerResponse): void {
    if (!this.#status.metrics) return fail(res, 'LEAKY_NO_ROUTE', 'metrics are off')
    this.#status.metrics().then(
      (m) => {
        res.writeHead(200, { 'content-type': m.contentType, 'content-length': Buffer.byteLength(m.body), 'cache-control': 'no-store' })
        res.end(m.body)
      },
      (err: Error) => fail(res, 'LEAKY_INTERNAL', `metrics failed: ${err.message}`),
    )
  }
}

type Action = 'reload' | 'drain' | 'keys.list' | 'keys.create' | 'keys.revoke' | 'keys.rotate'
interface ApiRoute {
  action: Action
  role: Role
  target: string
  /** takes a JSON body ('optional': an empty body is {}) */
  body: 'none' | 'required' | 'optional'
}

const KEY_PATH = /^\/admin\/keys\/([^/]+)(\/rotate)?$/

function route(path: string, method: string): ApiRoute | { allow: string } | null {
  switch (path) {
    case '/admin/reload':
      return method === 'POST' ? { action: 'reload', role: 'operator', target: '', body: 'none' } : { allow: 'POST' }
    case '/admin/drain':
      return method === 'POST' ? { action: 'drain', role: 'operator', target: '', body: 'none' } : { allow: 'POST' }
    case '/admin/keys':
      if (method === 'GET') return { action: 'keys.list', role: 'admin', target: '', body: 'none' }
      if (method === 'POST') return { action: 'keys.create', role: 'admin', target: '', body: 'required' }
      return { allow: 'GET, POST' }
  }
  const m = KEY_PATH.exec(path)
  if (m === null) return null
  let id: string
  try {
    id = decodeURIComponent(m[1])
  } catch {
    return null
  }
  if (m[2] !== undefined) return method === 'POST' ? { action: 'keys.rotate', role: 'admin', target: id, body: 'optional' } : { allow: 'POST' }
  return method === 'DELETE' ? { action: 'keys.revoke', role: 'admin', target: id, body: 'none' } : { allow: 'DELETE' }
}

/** Read a JSON body (bounded); an empty body is {} unless one is required. */
function readJson(req: http.IncomingMessage, want: ApiRoute['body'], done: (err: { code: ErrorCode; message: string } | null, body: unknown) => void): void {
  const parts: Buffer[] = []
  let size = 0
  let over = false
  req.on('data', (c: Buffer) => {
    size += c.length
    if (size > MAX_BODY) over = true
    else parts.push(c)
  })
  req.on('error', () => undefined)
  req.on('end', () => {
    if (over) return done({ code: 'LEAKY_BODY_TOO_LARGE', message: `admin request body over ${MAX_BODY} bytes` }, null)
    const text = Buffer.concat(parts).toString('utf8')
    if (text.trim() === '') {
      if (want === 'required') return done({ code: 'LEAKY_BAD_REQUEST', message: 'a JSON object body is required' }, null)
      return done(null, {})
    }
    if (want === 'none') return done({ code: 'LEAKY_BAD_REQUEST', message: 'this endpoint takes no body' }, null)
    try {
      return done(null, JSON.parse(text))
    } catch (err) {
      return done({ code: 'LEAKY_BAD_JSON', message: `request body is not valid JSON: ${(err as Error).message}` }, null)
    }
  })
}

function shaped(code: ErrorCode, message: string): { status: number; result: string; body: unknown } {
  const e = ERRORS[code]
  return { status: e.status, result: code, body: { error: { message, type: e.type, code } } }
}

function fail(res: http.ServerResponse, code: ErrorCode, message: string = ERRORS[code].message, headers: Record<string, string> = {}): void {
  const e = ERRORS[code]
  sendText(res, e.status, errorBody(message, e.type, code), headers)
}

function notAllowed(res: http.ServerResponse, allow: string): void {
  fail(res, 'LEAKY_METHOD_NOT_ALLOWED', `allowed: ${allow}`, { allow })
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  sendText(res, status, JSON.stringify(body))
}

function sendText(res: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers })
  res.end(text)
}
