// An identity provider for tests: signing keys generated with jose, a JWKS served over real HTTP (node:http on a
// free loopback port) that a test can rotate, break (500, garbage) or stall, and tokens signed like an IdP would.
import http from 'node:http'
import { once, EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'

export interface SigningKey {
  kid: string
  alg: string
  privateKey: CryptoKey
  jwk: JWK
}

export async function signingKey(kid: string, alg: 'RS256' | 'ES256' | 'EdDSA' | 'PS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  return { kid, alg, privateKey, jwk }
}

export const ISSUER = 'https://idp.test/'
export const AUDIENCE = 'leaky-proxy'

/** A token as the IdP issues it: iss, aud, iat, exp in 10 min, kid in the header; `claims` override or add. */
export async function sign(key: SigningKey, claims: JWTPayload & { sub?: string }, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600, ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header })
    .sign(key.privateKey)
}

export type JwksMode = 'ok' | 'fail' | 'garbage' | 'stall'

/** Emits 'fetch' (mode) on every request it gets. */
export class JwksServer extends EventEmitter {
  readonly #srv: http.Server
  keys: JWK[] = []
  mode: JwksMode = 'ok'
  fetches = 0
  url = ''
  readonly #stalled = new Set<http.ServerResponse>()

  constructor() {
    super()
    this.#srv = http.createServer((req, res) => {
      this.fetches++
      this.emit('fetch', this.mode)
      switch (this.mode) {
        case 'ok':
          res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: this.keys }))
          return
        case 'fail':
          res.writeHead(500).end('down')
          return
        case 'garbage':
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": 42')
          return
        case 'stall':
          this.#stalled.add(res)
          res.on('close', () => this.#stalled.delete(res))
      }
    })
  }

  async listen(): Promise<this> {
    this.#srv.listen(0, '127.0.0.1')
    await once(this.#srv, 'listening')
    this.url = `http://127.0.0.1:${(this.#srv.address() as AddressInfo).port}/.well-known/jwks.json`
    return this
  }

  /** Resolves on the next fetch. */
  nextFetch(): Promise<unknown> {
    return once(this, 'fetch')
  }

  async close(): Promise<void> {
    for (const r of this.#stalled) r.destroy()
    this.#srv.closeAllConnections()
    this.#srv.close()
    await once(this.#srv, 'close')
  }
}

export async function startJwks(keys: JWK[]): Promise<JwksServer> {
  const s = new JwksServer()
  s.keys = keys
  return s.listen()
}
