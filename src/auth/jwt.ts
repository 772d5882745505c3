// Bearer JWT → the caller's key id, org and tier, as a virtual key would give them. jose verifies (its verification
// is async: WebCrypto), so a verified token is remembered by its SHA-256 until its `exp`: the steady state is one
// hash and one map lookup, synchronous (bench/macro/jwt-overhead.mjs). The token itself is never stored, logged
// or echoed; failure details name the reason only.
import { hash } from 'node:crypto'
import type { JWTPayload, JWTVerifyOptions } from 'jose'
import { jose } from './jose.js'
import type { ErrorCode } from '../errors.js'
import type { JwtConfig } from '../config/schema.js'
import { JwksSource, type JwksEvents } from './jwks.js'
import { KeySet, type VerifyKey } from './keyset.js'

/** Larger tokens are refused before any work: a JWT carrying 8 KB of claims is an attack or a mistake. */
export const MAX_TOKEN_BYTES = 8 * 1024
/** A token without kid on an issuer with many keys is tried against at most this many. */
const MAX_CANDIDATES = 4
const MAX_CLAIM_CHARS = 256

export interface JwtIdentity {
  id: string
  org: string
  tier: string
  scale: number
  /** ms since the epoch after which the cached verdict is void */
  expMs: number
}

export interface JwtFailure {
  code: ErrorCode
  /** why, for the log line: never the token */
  detail: string
}

export type JwtResult = JwtIdentity | JwtFailure

export function failed(r: JwtResult): r is JwtFailure {
  return (r as JwtFailure).code !== undefined
}

const fail = (code: ErrorCode, detail: string): JwtFailure => ({ code, detail })

export class JwtVerifier {
  readonly #static: KeySet | null
  readonly #jwks: JwksSource | null
  readonly #options: JWTVerifyOptions
  readonly #allowed: ReadonlySet<string>
  readonly #claims: JwtConfig['claims']
  readonly #tiers: ReadonlyMap<string, number>
  readonly #cacheSize: number
  readonly #skewSec: number
  /** verified tokens by base64 SHA-256, in insertion order (the oldest is evicted first) */
  readonly #cache = new Map<string, JwtIdentity>()
  /** verifications under way, so a burst of requests with one new token verifies it once */
  readonly #pending = new Map<string, Promise<JwtResult>>()

  constructor(cfg: JwtConfig, tiers: Record<string, { scale: number }>, events: JwksEvents) {
    this.#static = cfg.keys !== undefined ? new KeySet(cfg.keys) : null
    this.#jwks = cfg.jwks_url !== undefined
      ? new JwksSource({ url: cfg.jwks_url, refreshMs: cfg.jwks_refresh, cooldownMs: cfg.jwks_cooldown, timeoutMs: cfg.jwks_timeout }, {
        loaded: (url, kids, removed) => {
          // a key the issuer withdrew may have signed tokens in the cache: they are verified again
          if (removed) this.#cache.clear()
          events.loaded(url, kids, removed)
        },
        failed: events.failed,
      })
      : null
    this.#options = {
      issuer: cfg.issuer,
      audience: cfg.audience,
      algorithms: cfg.algorithms,
      clockTolerance: cfg.clock_skew / 1000,
      requiredClaims: ['exp'],
    }
    this.#allowed = new Set(cfg.algorithms)
    this.#claims = cfg.claims
    this.#tiers = new Map(Object.entries(tiers).map(([n, t]) => [n, t.scale]))
    this.#cacheSize = cfg.cache_size
    this.#skewSec = Math.ceil(cfg.clock_skew / 1000)
    // fetch the keys and load jose now, so the first requests do not wait for them
    void this.#jwks?.refresh()
    void jose()
  }

  /** The token's cache slot (base64 SHA-256). */
  digest(token: string): string {
    return hash('sha256', token, 'base64')
  }

  /** A cached verdict for this token, or null when it must be verified (async). */
  cached(digest: string, nowMs: number): JwtIdentity | null {
    const who = this.#cache.get(digest)
    if (who === undefined) return null
    if (who.expMs > nowMs) return who
    this.#cache.delete(digest)
    return null
  }

  /** Verify a token not in the cache. Never rejects. */
  verify(token: string, digest: string): Promise<JwtResult> {
    let p = this.#pending.get(digest)
    if (p === undefined) {
      p = this.#verify(token, digest).catch((err: unknown) => fail('LEAKY_JWT_MALFORMED', `verification failed: ${(err as Error).message}`))
      p.finally(() => this.#pending.delete(digest))
      this.#pending.set(digest, p)
    }
    return p
  }

  close(): void {
    this.#jwks?.close()
  }

  async #verify(token: string, digest: string): Promise<JwtResult> {
    // decodeProtectedHeader also takes JWE (5 parts) and JSON serialisations: only a compact JWS is a JWT here
    if (dots(token) !== 2) return fail('LEAKY_JWT_MALFORMED', 'not three dot-separated parts')
    const { decodeProtectedHeader, jwtVerify } = await jose()
    let alg: unknown, kid: unknown
    try {
      ;({ alg, kid } = decodeProtectedHeader(token))
    } catch {
      return fail('LEAKY_JWT_MALFORMED', 'header is not base64url JSON')
    }
    if (typeof alg !== 'string') return fail('LEAKY_JWT_MALFORMED', 'header has no alg')
    if (!this.#allowed.has(alg)) return fail('LEAKY_JWT_ALG', `alg ${JSON.stringify(alg.slice(0, 16))} is not in jwt.algorithms`)
    if (kid !== undefined && typeof kid !== 'string') return fail('LEAKY_JWT_MALFORMED', 'header kid is not a string')
    const k = kid ?? ''
    const keys = await this.#candidates(alg, k)
    if (!Array.isArray(keys)) return keys
    let last: JwtFailure = fail('LEAKY_JWT_SIGNATURE', 'signature does not verify')
    for (let i = 0; i < keys.length && i < MAX_CANDIDATES; i++) {
      let payload: JWTPayload
      try {
        ;({ payload } = await jwtVerify(token, await keys[i].key(alg), this.#options))
      } catch (err) {
        last = reason(err as Error & { code?: string; claim?: string; reason?: string })
        // only a signature that fails may verify with the next key; any claim failure is the token's
        if (last.code === 'LEAKY_JWT_SIGNATURE') continue
        return last
      }
      return this.#identity(payload, digest)
    }
    return last
  }

  async #candidates(alg: string, kid: string): Promise<VerifyKey[] | JwtFailure> {
    if (this.#static !== null) {
      const c = this.#static.candidates(alg, kid)
      return c.length > 0 ? c : fail('LEAKY_JWT_UNKNOWN_KID', kid === '' ? `no configured key fits alg ${alg}` : `no configured key has kid ${JSON.stringify(kid.slice(0, 64))}`)
    }
    const src = this.#jwks!
    const now = performance.now()
    src.maybeRefresh(now)
    const loading = src.loading
    if (loading !== null) await loading
    if (src.set === null) return fail('LEAKY_JWT_KEYS_UNAVAILABLE', 'no JWKS could be fetched yet')
    let c = src.set.candidates(alg, kid)
    if (c.length === 0) {
      // a kid the set lacks is how a key rotation shows: fetch again (bounded by jwks_cooldown)
      const p = src.refreshForKid(now)
      if (p !== null) {
        await p
        c = src.set.candidates(alg, kid)
      }
    }
    if (c.length > 0) return c
    return fail('LEAKY_JWT_UNKNOWN_KID', kid === '' ? `no key of the JWKS fits alg ${alg}` : `kid ${JSON.stringify(kid.slice(0, 64))} is not in the JWKS`)
  }

  #identity(p: JWTPayload, digest: string): JwtResult {
    // jose checks iat only against a maximum age; a token issued in the future is as unusable as one with nbf there
    if (typeof p.iat === 'number' && p.iat > Date.now() / 1000 + this.#skewSec) return fail('LEAKY_JWT_NOT_YET_VALID', '"iat" claim is in the future')
    const c = this.#claims
    const id = claim(p, c.key_id)
    if (id === '') return fail('LEAKY_JWT_CLAIMS', `claim ${c.key_id} (jwt.claims.key_id) is missing, empty or longer than ${MAX_CLAIM_CHARS}`)
    const org = c.org === undefined ? '' : claim(p, c.org)
    let tier = ''
    let scale = 1
    if (c.tier !== undefined) {
      tier = claim(p, c.tier)
      if (tier !== '') {
        const sc = this.#tiers.get(tier)
        if (sc === undefined) return fail('LEAKY_JWT_CLAIMS', `claim ${c.tier} names tier ${JSON.stringify(tier.slice(0, 48))}, which is not in tiers`)
        scale = sc
      }
    }
    const who: JwtIdentity = { id, org, tier, scale, expMs: (p.exp as number) * 1000 }
    if (this.#cacheSize > 0 && who.expMs > Date.now()) {
      if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value as string)
      this.#cache.set(digest, who)
    }
    return who
  }
}

function dots(token: string): number {
  let n = 0
  for (let i = token.indexOf('.'); i !== -1; i = token.indexOf('.', i + 1)) n++
  return n
}

/** A claim as an identity string: strings and numbers; anything else (or too long) is '' (absent). */
function claim(p: JWTPayload, name: string): string {
  const v = p[name]
  const s = typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : ''
  return s.length > MAX_CLAIM_CHARS ? '' : s
}

/** jose's error → our reason code. jose's messages name claims, never the token, so they may be logged. */
function reason(err: Error & { code?: string; claim?: string; reason?: string }): JwtFailure {
  switch (err.code) {
    case 'ERR_JWT_EXPIRED':
      return fail('LEAKY_JWT_EXPIRED', err.message)
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return fail('LEAKY_JWT_SIGNATURE', 'signature does not verify')
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return fail('LEAKY_JWT_ALG', err.message)
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (err.reason === 'missing' || err.reason === 'invalid') return fail('LEAKY_JWT_CLAIMS', err.message)
      if (err.claim === 'iss') return fail('LEAKY_JWT_ISSUER', err.message)
      if (err.claim === 'aud') return fail('LEAKY_JWT_AUDIENCE', err.message)
      if (err.claim === 'nbf' || err.claim === 'iat') return fail('LEAKY_JWT_NOT_YET_VALID', err.message)
      return fail('LEAKY_JWT_CLAIMS', err.message)
    default:
      return fail('LEAKY_JWT_MALFORMED', err.code !== undefined ? `${err.code}: ${err.message}` : err.message)
  }
}
