// A `jwt.keys` entry → one JSON Web Key, checked at load so a bad key is a config error at its line:col and not a
// 401 on every request. PEM (SPKI public key or X.509 certificate) is converted to a JWK by node:crypto, so the
// worker hands jose one JWK set whatever the user wrote. Private keys are refused: the proxy only verifies.
import { createPublicKey, createSecretKey, type JsonWebKey } from 'node:crypto'
import { show } from './fields.js'
import type { UnitResult } from './units.js'

/** Below 256 bits an HMAC secret can be brute-forced offline from one captured token. */
const MIN_SECRET_BYTES = 32
const KTY = ['RSA', 'EC', 'OKP', 'oct']
const HINT = 'expected a PEM public key or certificate, or a JWK (a map or its JSON text; for HS* { kty: oct, k: BASE64URL })'

export function parseJwtKey(v: unknown): UnitResult<JsonWebKey> {
  if (typeof v === 'string') {
    const text = v.trim()
    if (text.startsWith('-----BEGIN')) return fromPem(text)
    if (text.startsWith('{')) {
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch (err) {
        return { ok: false, message: `JWK is not valid JSON: ${(err as Error).message}` }
      }
      return fromJwk(parsed)
    }
    // never echo the value: it may be a secret
    return { ok: false, message: HINT }
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return fromJwk(v)
  return { ok: false, message: `${HINT}, got ${show(v)}` }
}

function fromPem(pem: string): UnitResult<JsonWebKey> {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) return { ok: false, message: 'a private key: give the public key (or certificate); the proxy only verifies' }
  try {
    return { ok: true, value: createPublicKey(pem).export({ format: 'jwk' }) }
  } catch (err) {
    return { ok: false, message: `PEM key does not parse: ${(err as Error).message}` }
  }
}

function fromJwk(raw: unknown): UnitResult<JsonWebKey> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, message: HINT }
  const jwk = raw as JsonWebKey & { kid?: unknown; alg?: unknown; use?: unknown }
  if (typeof jwk.kty !== 'string' || !KTY.includes(jwk.kty)) return { ok: false, message: `JWK kty must be one of ${KTY.join(', ')}, got ${show(jwk.kty)}` }
  for (const f of ['kid', 'alg', 'use'] as const) {
    if (jwk[f] !== undefined && typeof jwk[f] !== 'string') return { ok: false, message: `JWK ${f} must be a string, got ${show(jwk[f])}` }
  }
  if (jwk.use !== undefined && jwk.use !== 'sig') return { ok: false, message: `JWK use is "${jwk.use as string}": only signing keys (use: sig) verify tokens` }
  const meta: JsonWebKey = {}
  if (jwk.kid !== undefined) meta.kid = jwk.kid as string
  if (jwk.alg !== undefined) meta.alg = jwk.alg as string
  try {
    if (jwk.kty === 'oct') {
      if (typeof jwk.k !== 'string') return { ok: false, message: 'JWK of kty oct needs k (the secret, base64url)' }
      const bytes = createSecretKey(Buffer.from(jwk.k, 'base64url')).symmetricKeySize ?? 0
      if (bytes < MIN_SECRET_BYTES) return { ok: false, message: `HMAC secret has ${bytes} bytes; use at least ${MIN_SECRET_BYTES} (256 bits)` }
      return { ok: true, value: { kty: 'oct', k: jwk.k, ...meta } }
    }
    if (jwk.d !== undefined) return { ok: false, message: 'a private JWK (it has d): give the public key; the proxy only verifies' }
    const pub = createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'jwk' })
    return { ok: true, value: { ...pub, ...meta } }
  } catch (err) {
    return { ok: false, message: `JWK does not parse: ${(err as Error).message}` }
  }
}
