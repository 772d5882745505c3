// Admin access: a bearer token (admin.token) guards every admin endpoint but /live, /ready and — unless
// admin.metrics_public is false — /metrics. A browser cannot send a bearer header when it opens /status, so
// /status?token=… answers with a session cookie and a redirect that takes the token out of the address bar; the
// cookie holds a hash of the token, never the token itself, and dies when the token changes.
import { createHash, timingSafeEqual } from 'node:crypto'
import type http from 'node:http'

export const COOKIE = 'leaky_admin'

export interface AdminAccess {
  /** unset or empty: no auth (the listener should then stay on loopback) */
  token: string | undefined
  metricsPublic: boolean
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** Compare in constant time: equal-length digests, so neither the token's length nor its prefix leaks. */
export function tokenMatches(presented: string, token: string): boolean {
  return timingSafeEqual(digest(presented), digest(token))
}

/** The cookie value that stands for `token`. */
export function sessionValue(token: string): string {
  return createHash('sha256').update(`leaky-admin-session\0${token}`).digest('hex')
}

export function authorized(req: http.IncomingMessage, token: string | undefined): boolean {
  if (token === undefined || token === '') return true
  const h = req.headers.authorization
  if (typeof h === 'string' && h.length > 7 && h.slice(0, 7).toLowerCase() === 'bearer ') {
    return tokenMatches(h.slice(7).trim(), token)
  }
  const c = cookie(req.headers.cookie, COOKIE)
  return c !== null && tokenMatches(c, sessionValue(token))
}

export function sessionCookie(token: string): string {
  return `${COOKIE}=${sessionValue(token)}; Path=/; HttpOnly; SameSite=Strict`
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
