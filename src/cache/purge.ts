// POST /admin/cache/purge on the admin listener (behind admin auth like every admin endpoint but /live and /ready).
// Body (JSON, optional): {"route": "/v1"} and/or {"scope": "key:alice" | "org:acme" | ""}; neither: everything.
// Answer: {"purged": <entries removed>, "entries": <left>, "bytes": <left>}. Kept apart from src/admin/ so the
// admin server only routes to it.
import type http from 'node:http'
import type { CacheOwner } from './owner.js'

const MAX_BODY = 64 * 1024

export type PurgeHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void

export function purgeHandler(owner: () => CacheOwner | null): PurgeHandler {
  return (req, res) => {
    if (req.method !== 'POST') return send(res, 404, error(`no admin endpoint ${req.method ?? ''} /admin/cache/purge (it takes POST)`, 'LEAKY_NO_ROUTE'), { allow: 'POST' })
    const parts: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size <= MAX_BODY) parts.push(c)
    })
    req.on('end', () => {
      if (size > MAX_BODY) return send(res, 413, error('purge body too large', 'LEAKY_BODY_TOO_LARGE'))
      const text = Buffer.concat(parts).toString('utf8').trim()
      let body: unknown = {}
      if (text !== '') {
        try {
          body = JSON.parse(text)
        } catch {
          return send(res, 400, error('purge body is not JSON', 'LEAKY_BAD_JSON'))
        }
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body)) return send(res, 400, error('purge body must be a JSON object', 'LEAKY_BAD_REQUEST'))
      const b = body as Record<string, unknown>
      for (const k of Object.keys(b)) {
        if (k !== 'route' && k !== 'scope') return send(res, 400, error(`unknown field "${k}" (route, scope)`, 'LEAKY_BAD_REQUEST'))
      }
      if ((b.route !== undefined && typeof b.route !== 'string') || (b.scope !== undefined && typeof b.scope !== 'string')) {
        return send(res, 400, error('route and scope must be strings', 'LEAKY_BAD_REQUEST'))
      }
      const o = owner()
      if (o === null) return send(res, 200, { purged: 0, entries: 0, bytes: 0 })
      const route = b.route as string | undefined
      const scope = b.scope as string | undefined
      const purged = o.purge(route, scope)
      if (o.redis === null) return send(res, 200, { purged, entries: o.store.size, bytes: o.store.bytes })
      // the fleet tier too, or another proxy would hand the purged answers back
      o.purgeRemote(route, scope).then(
        (n) => send(res, 200, { purged, entries: o.store.size, bytes: o.store.bytes, redis_purged: n }),
        (err: Error) => send(res, 503, { error: { message: `purged here (${purged}), but not in Redis: ${err.message}`, type: 'server_error', code: 'LEAKY_REDIS_UNAVAILABLE' } }),
      )
    })
  }
}

function error(message: string, code: string): unknown {
  return { error: { message, type: 'invalid_request_error', code } }
}

function send(res: http.ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...extra })
  res.end(text)
}
