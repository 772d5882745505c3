// The cache key of a request: method, path, the scope value (whose answers may be shared) and the request body
// canonicalised — object keys sorted at every depth, the ignored top-level fields (`user`, `stream_options`,
// `metadata` by default) left out — hashed with SHA-256. Two requests that differ only in key order, whitespace or
// an ignored field share an entry; requests of two tenants never do unless the route says `scope: global`, because
// the scope value is part of what is hashed.
import { createHash } from 'node:crypto'

/** Why a request is not looked up; '' when it is. */
export type Bypass = '' | 'method' | 'no-store' | 'not-json' | 'too-large' | 'not-deterministic'

/**
 * `temperature: 0` or any `seed`: the only requests whose answers are worth replaying under `when: deterministic`
 * (a sampled answer replayed forever would be a different product).
 */
export function deterministic(body: unknown): boolean {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return false
  const b = body as Record<string, unknown>
  if (b.seed !== undefined && b.seed !== null) return true
  if (b.temperature === 0) return true
  // Gemini keeps sampling settings in generationConfig
  const g = b.generationConfig ?? b.generation_config
  if (g !== null && typeof g === 'object') {
    const gc = g as Record<string, unknown>
    return gc.temperature === 0 || (gc.seed !== undefined && gc.seed !== null)
  }
  return false
}

/** JSON text of `v` with object keys sorted at every depth; `ignore` applies to the top level only. */
export function canonical(v: unknown, ignore: ReadonlySet<string> | null = null): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null'
  if (Array.isArray(v)) {
    let out = '['
    for (let i = 0; i < v.length; i++) out += (i === 0 ? '' : ',') + canonical(v[i])
    return out + ']'
  }
  const o = v as Record<string, unknown>
  const keys = Object.keys(o).sort()
  let out = '{'
  let first = true
  for (const k of keys) {
    const x = o[k]
    if (x === undefined || (ignore !== null && ignore.has(k))) continue
    out += (first ? '' : ',') + JSON.stringify(k) + ':' + canonical(x)
    first = false
  }
  return out + '}'
}

/** The entry's key: base64url SHA-256 of method, path with query, scope value and canonical body. */
export function cacheKey(method: string, path: string, scope: string, body: string): string {
  return createHash('sha256').update(method).update('\0').update(path).update('\0').update(scope).update('\0').update(body).digest('base64url')
}

/**
 * What the client's Cache-Control asks: 'no-store' (neither served from nor stored in the cache), 'no-cache' (not
 * served from it; the fresh answer is stored), '' (use the cache).
 */
export function clientDirective(cc: string): '' | 'no-store' | 'no-cache' {
  if (cc === '') return ''
  const v = cc.toLowerCase()
  if (v.includes('no-store')) return 'no-store'
  if (v.includes('no-cache') || v.includes('max-age=0')) return 'no-cache'
  return ''
}

/** An upstream answer that must not be stored: Cache-Control no-store or private. */
export function upstreamForbids(cc: string | string[] | undefined): boolean {
  if (cc === undefined) return false
  const v = (typeof cc === 'string' ? cc : cc.join(',')).toLowerCase()
  return v.includes('no-store') || v.includes('private')
}
