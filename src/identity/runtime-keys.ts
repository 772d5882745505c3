// The runtime keys as one worker thread sees them: a Map from the hex SHA-256 of a secret to who it is, replaced
// whole when the main thread posts a new list (a change reaches every worker within a message hop). The lookup is
// one Map.get, synchronous, as cheap as the config keys' lookup; expiry is checked against the clock only for keys
// that have one.
import type { KeyRow } from '../store/key-store.js'

export interface RuntimeIdentity {
  id: string
  org: string
  tier: string
  /** ms since the epoch; Infinity: never */
  expiresAt: number
  /** the secret was replaced by a rotation: this one is valid until expiresAt (the grace period) */
  rotated: boolean
  revoked: boolean
  /** allowed models (null: any) */
  models: ReadonlySet<string> | null
  /** allowed path prefixes (null: any) */
  routes: readonly string[] | null
}

let table = new Map<string, RuntimeIdentity>()

export function setRuntimeKeys(rows: readonly KeyRow[]): void {
  const next = new Map<string, RuntimeIdentity>()
  for (const r of rows) {
    const who: RuntimeIdentity = {
      id: r.id,
      org: r.org,
      tier: r.tier,
      expiresAt: r.expires_at ?? Infinity,
      rotated: false,
      revoked: r.revoked_at !== null,
      models: r.models === null ? null : new Set(r.models),
      routes: r.routes,
    }
    next.set(r.sha256, who)
    if (r.prev_sha256 !== null && r.prev_until !== null && r.revoked_at === null) {
      next.set(r.prev_sha256, { ...who, rotated: true, expiresAt: Math.min(who.expiresAt, r.prev_until) })
    }
  }
  table = next
}

export function runtimeKey(sha256: string): RuntimeIdentity | undefined {
  return table.get(sha256)
}

/** The request path is under one of the key's route prefixes. */
export function routeAllowed(who: RuntimeIdentity, path: string): boolean {
  const routes = who.routes
  if (routes === null) return true
  for (let i = 0; i < routes.length; i++) if (path.startsWith(routes[i])) return true
  return false
}
