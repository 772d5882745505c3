// The verification keys of one issuer and how a token's header picks among them. jose's createLocalJWKSet would do
// the picking, but it refuses HS* (symmetric JWKs), and `jwt.keys` may hold an HMAC secret; one picker serves both
// the configured keys and a fetched JWKS. Imported keys are kept per (key, alg): importing costs more than verifying.
import type { CryptoKey, JWK } from 'jose'
import { jose } from './jose.js'
import type { JsonWebKey } from 'node:crypto'

/** What a signature algorithm needs of a key: its kty and, for EC/OKP, its curve. */
const NEEDS: Record<string, { kty: string; crv?: string }> = {
  RS256: { kty: 'RSA' }, RS384: { kty: 'RSA' }, RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' }, PS384: { kty: 'RSA' }, PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' }, ES384: { kty: 'EC', crv: 'P-384' }, ES512: { kty: 'EC', crv: 'P-521' },
  EdDSA: { kty: 'OKP' }, Ed25519: { kty: 'OKP', crv: 'Ed25519' },
  HS256: { kty: 'oct' }, HS384: { kty: 'oct' }, HS512: { kty: 'oct' },
}

export class VerifyKey {
  readonly jwk: JsonWebKey
  readonly kid: string
  readonly #imported = new Map<string, Promise<CryptoKey | Uint8Array>>()

  constructor(jwk: JsonWebKey) {
    this.jwk = jwk
    this.kid = typeof jwk.kid === 'string' ? jwk.kid : ''
  }

  fits(alg: string, kid: string): boolean {
    const need = NEEDS[alg]
    if (need === undefined || this.jwk.kty !== need.kty) return false
    if (need.crv !== undefined && this.jwk.crv !== need.crv) return false
    if (this.jwk.alg !== undefined && this.jwk.alg !== alg) return false
    // a token naming a kid gets only that key; one without a kid may use any key that fits (a single-key issuer),
    // and a key without a kid (a PEM in the config) serves whatever kid the issuer stamps on its tokens
    return kid === '' || this.kid === '' || kid === this.kid
  }

  key(alg: string): Promise<CryptoKey | Uint8Array> {
    let k = this.#imported.get(alg)
    if (k === undefined) {
      k = jose().then((j) => j.importJWK(this.jwk as JWK, alg))
      // a key that cannot be imported for this alg must not stay cached as a rejected promise
      k.catch(() => this.#imported.delete(alg))
      this.#imported.set(alg, k)
    }
    return k
  }
}

export class KeySet {
  readonly keys: readonly VerifyKey[]
  /** kids of the set, for logs and for telling whether a refresh removed one */
  readonly kids: readonly string[]

  constructor(jwks: readonly JsonWebKey[]) {
    this.keys = jwks.map((j) => new VerifyKey(j))
    this.kids = this.keys.map((k) => k.kid)
  }

  /** Keys this token may be signed with: the one named by kid, or, without a kid, every key that fits the alg. */
  candidates(alg: string, kid: string): VerifyKey[] {
    const out: VerifyKey[] = []
    for (const k of this.keys) if (k.fits(alg, kid)) out.push(k)
    return out
  }

  /** Whether `next` lacks a kid this set has: tokens verified with a removed key must not stay trusted from cache. */
  removedIn(next: KeySet): boolean {
    return this.kids.some((k) => !next.kids.includes(k))
  }
}
