// Admin access: bearer tokens with roles. `admin.tokens: [{ id, sha256, role }]` and the older single `admin.token`
// (id "token", role admin). viewer reads /status, /status.json and /metrics; operator may also reload and drain;
// admin may also manage keys. /live, /ready and /admin/openapi.json are open, and /metrics while metrics_public.
// With no token configured at all everything is open, as before roles existed (the listener should then stay on
// loopback).
//
// A presented token is hashed and compared with every configured hash in constant time, all of them every time, so
// neither which token matched nor how much of it did shows in the timing. A browser cannot send a bearer header when
// it opens /status, so /status?token=… answers with a session cookie and a redirect that takes the token out of the
// address bar; the cookie holds a keyed hash of the token's hash, never the token, and dies when the token changes.
import { createHash, timingSafeEqual } from 'node:crypto'
import type http from 'node:http'
import type { Config } from '../config/index.js'

export const COOKIE = 'leaky_admin'

export const ROLE_RANK = { viewer: 1, operator: 2, admin: 3 } as const
export type Role = keyof typeof ROLE_RANK

/** The admin section as the listener uses it (read per request: a reload that changes a token applies at once). */
export type AdminAccess = Pick<Config['admin'], 'token' | 'tokens' | 'metrics_public' | 'failed_auth'>

export interface Caller {
  /** the token's id ("token" for admin.token; "anonymous" when no token is configured) */
  id: string
  role: Role
}

interface Known {
  id: string
  role: Role
  digest: Buffer
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** Every configured token as (id, role, sha256 digest); cached per access object (a reload makes a new one). */
const cache = new WeakMap<AdminAccess, Known[]>()
function known(a: AdminAccess): Known[] {
  let k = cache.get(a)
  if (k === undefined) {
    k = a.tokens.map((t) => ({ id: t.id, role: t.role, digest: Buffer.from(t.sha256, 'hex') }))
    if (a.token !== undefined && a.token !== '') k.push({ id: 'token', role: 'admin', digest: sha256(a.token) })
    cache.set(a, k)
  }
  return k
}

export function authConfigured(a: AdminAccess): boolean {
  return known(a).length > 0
}

/** The token whose digest equals `digest`, comparing with all of them in constant time. */
function match(a: AdminAccess, digest: Buffer): Caller | null {
  let hit: Known | null = null
  for (const k of known(a)) if (timingSafeEqual(k.digest, digest) && hit === null) hit = k
  return hit === null ? null : { id: hit.id, role: hit.role }
}

export function tokenCaller(a: AdminAccess, presented: string): Caller | null {
  return match(a, sha256(presented))
}

/** The cookie value that stands for a token (by its digest). */
function sessionDigest(digest: Buffer): Buffer {
  return createHash('sha256').update('leaky-admin-session\0').update(digest).digest()
}

export function sessionCookie(a: AdminAccess, caller: Caller): string {
  const k = known(a).find((x) => x.id === caller.id)!
  return `${COOKIE}=${sessionDigest(k.digest).toString('hex')}; Path=/; HttpOnly; SameSite=Strict`
}

export type AuthResult = { ok: true; caller: Caller } | { ok: false; reason: 'missing' | 'unknown_token' }

/** Who calls: the bearer token, else the session cookie. */
export function authenticate(req: http.IncomingMessage, a: AdminAccess): AuthResult {
  if (!authConfigured(a)) return { ok: true, caller: { id: 'anonymous', role: 'admin' } }
  const h = req.headers.authorization
  if (typeof h === 'string' && h.length > 7 && h.slice(0, 7).toLowerCase() === 'bearer ') {
    const c = tokenCaller(a, h.slice(7).trim())
    return c === null ? { ok: false, reason: 'unknown_token' } : { ok: true, caller: c }
  }
  const v = cookie(req.headers.cookie, COOKIE)
  if (v === null || !/^[0-9a-f]{64}$/.test(v)) return { ok: false, reason: typeof h === 'string' || v !== null ? 'unknown_token' : 'missing' }
  const presented = Buffer.from(v, 'hex')
  let hit: Known | null = null
  for (const k of known(a)) if (timingSafeEqual(sessionDigest(k.digest), presented) && hit === null) hit = k
  return hit === null ? { ok: false, reason: 'unknown_token' } : { ok: true, caller: { id: hit.id, role: hit.role } }
}

function cookie(header: string | undefined, name: string): string | null {
  if (header === undefined) return null
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return null
}

/** Host part of a listen address is loopback (the only place an admin listener without a token belongs). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.')
}
