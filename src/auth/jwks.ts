// An issuer's JSON Web Key Set fetched over HTTP, one per worker and plan. The last good set is kept whatever
// happens to the endpoint afterwards (down, stalled, garbage, no usable key): an IdP outage must not log everyone
// out while the keys it published are still valid. Fetches are triggered by requests, never by a timer: at start,
// when the set is older than `jwks_refresh` (in the background, the old set answers meanwhile), and when a token
// names a kid the set does not have (key rotation) — that one at most once per `jwks_cooldown`, so a flood of
// tokens with invented kids costs one fetch per cooldown and not one per request.
import { request } from 'undici'
import type { JsonWebKey } from 'node:crypto'
import { parseJwtKey } from '../config/jwt-key.js'
import { KeySet } from './keyset.js'

/** A JWKS is a few KB; anything far larger is not one. */
const MAX_JWKS_BYTES = 1024 * 1024

export interface JwksOptions {
  url: string
  refreshMs: number
  cooldownMs: number
  timeoutMs: number
}

export interface JwksEvents {
  loaded(url: string, kids: readonly string[], removed: boolean): void
  failed(url: string, reason: string, keptKids: readonly string[] | null): void
}

/**
 * The last good set per URL in this thread, across plans: a reload builds a new source, and an IdP that is down at
 * that moment must not leave the new plan without the keys the old one had.
 */
const lastGood = new Map<string, KeySet>()

export class JwksSource {
  readonly #o: JwksOptions
  readonly #events: JwksEvents
  /** the last good set; null until one fetch succeeded */
  set: KeySet | null = null
  /** when a background fetch is due: jwks_refresh after a success, jwks_cooldown after a failure */
  #dueAt = -Infinity
  #kidRefreshAt = -Infinity
  #inflight: Promise<void> | null = null
  #abort = new AbortController()
  #closed = false

  constructor(o: JwksOptions, events: JwksEvents) {
    this.#o = o
    this.#events = events
    this.set = lastGood.get(o.url) ?? null
  }

  /** Fetch now unless one is under way; resolves when it has settled (never rejects). */
  refresh(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#inflight ??= this.#fetch().finally(() => {
      this.#inflight = null
    })
    return this.#inflight
  }

  /** Start a background refresh when the set has aged past jwks_refresh, or a failed fetch's cooldown has passed. */
  maybeRefresh(now: number): void {
    if (now >= this.#dueAt && this.#inflight === null) void this.refresh()
  }

  /** A token named a kid the set lacks: refresh, unless the cooldown since the last such refresh has not passed. */
  refreshForKid(now: number): Promise<void> | null {
    if (this.#inflight !== null) return this.#inflight
    if (now - this.#kidRefreshAt < this.#o.cooldownMs) return null
    this.#kidRefreshAt = now
    return this.refresh()
  }

  /** A set is being fetched and none is known yet: requests wait for it instead of being refused. */
  get loading(): Promise<void> | null {
    return this.set === null ? this.#inflight : null
  }

  close(): void {
    this.#closed = true
    this.#abort.abort()
  }

  async #fetch(): Promise<void> {
    const url = this.#o.url
    let next: KeySet
    try {
      next = await this.#load()
    } catch (err) {
      if (this.#closed) return
      this.#dueAt = performance.now() + this.#o.cooldownMs
      this.#events.failed(url, (err as Error).message, this.set?.kids ?? null)
      return
    }
    this.#dueAt = performance.now() + this.#o.refreshMs
    const removed = this.set !== null && this.set.removedIn(next)
    const changed = this.set === null || this.set.kids.join('\n') !== next.kids.join('\n')
    this.set = next
    lastGood.set(this.#o.url, next)
    if (changed) this.#events.loaded(url, next.kids, removed)
  }

  async #load(): Promise<KeySet> {
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#o.timeoutMs)])
    let text: string
    try {
      const res = await request(this.#o.url, { signal, headers: { accept: 'application/jwk-set+json, application/json' } })
      if (res.statusCode !== 200) {
        await res.body.dump()
        throw new Error(`HTTP ${res.statusCode}`)
      }
      const declared = Number(res.headers['content-length'] ?? -1)
      if (declared > MAX_JWKS_BYTES) {
        await res.body.dump()
        throw new Error(`${declared} bytes, more than a JWKS can be (1 MB)`)
      }
      const parts: Buffer[] = []
      let n = 0
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        n += chunk.length
        if (n > MAX_JWKS_BYTES) throw new Error('more than 1 MB, more than a JWKS can be')
        parts.push(chunk)
      }
      text = Buffer.concat(parts, n).toString('utf8')
    } catch (err) {
      const e = err as Error & { code?: string }
      if (e.name === 'TimeoutError' || e.code === 'UND_ERR_ABORTED' && signal.reason?.name === 'TimeoutError') throw new Error(`no answer within ${this.#o.timeoutMs} ms`)
      throw new Error(e.code !== undefined && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : e.message)
    }
    return parseJwks(text)
  }
}

/** JWKS text → a key set of its usable signing keys; no usable key at all is a failure (the old set stays). */
export function parseJwks(text: string): KeySet {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new Error('not JSON')
  }
  const keys = (doc as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys)) throw new Error('not a JSON Web Key Set (no "keys" list)')
  const usable: JsonWebKey[] = []
  const skipped: string[] = []
  for (const k of keys) {
    // an issuer's set holds public keys only; encryption keys and unknown types are skipped, not fatal
    const kty = (k as { kty?: unknown } | null)?.kty
    const r = kty === 'oct' ? { ok: false as const, message: 'a symmetric key in a public JWKS' } : parseJwtKey(k)
    if (r.ok) usable.push(r.value)
    else skipped.push(r.message)
  }
  if (usable.length === 0) throw new Error(`no usable signing key${skipped.length > 0 ? ` (${skipped[0]})` : ''}`)
  return new KeySet(usable)
}
