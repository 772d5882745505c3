// Stage 3 — identify, for `auth: jwt` routes: the client presents a bearer JWT where a virtual key would go; its
// claims give the key id, org and tier (jwt.claims), so per-key and per-org limits and tiers apply as for a key.
// A token seen before is answered from the verifier's cache synchronously; a new one is verified by jose (async):
// the stage returns PENDING and resumes the pipeline through `then`, as estimate and limit do. A failure is a 401
// with its LEAKY_JWT_* reason in the route's error shape; the token is stripped before forward and never logged.
import type { Config } from '../../config/index.js'
import { Next, type RequestState } from '../request-state.js'
import { replyError } from '../reply.js'
import { ctx } from '../context.js'
import { failed, JwtVerifier, MAX_TOKEN_BYTES, type JwtIdentity, type JwtResult } from '../../auth/jwt.js'
import { presentedKey } from '../credentials.js'

export function compileJwt(config: Config): JwtVerifier | null {
  if (config.jwt === undefined || !config.routes.some((r) => r.auth === 'jwt')) return null
  return new JwtVerifier(config.jwt, config.tiers, {
    loaded: (url, kids, removed) => ctx.logger.info({ msg: 'jwks loaded', url, kids, cache_cleared: removed || undefined }),
    failed: (url, reason, kept) => ctx.logger.warn({
      msg: 'jwks fetch failed', url, reason,
      detail: kept === null ? 'no key set yet: auth: jwt routes answer 503 LEAKY_JWT_KEYS_UNAVAILABLE' : 'the last good key set stays in use',
      kids: kept ?? undefined,
    }),
  })
}

export function identifyJwt(s: RequestState, then: (s: RequestState) => void): Next {
  const v = s.plan.jwt!
  const token = presentedKey(s)
  if (token === '') return replyError(s, 'LEAKY_JWT_MISSING')
  if (token.length > MAX_TOKEN_BYTES) return replyError(s, 'LEAKY_JWT_TOO_LARGE')
  const digest = v.digest(token)
  const who = v.cached(digest, Date.now())
  if (who !== null) {
    apply(s, who)
    return Next.CONTINUE
  }
  s.identifying = true
  void v.verify(token, digest).then((r) => verified(s, r, then))
  return Next.PENDING
}

function verified(s: RequestState, r: JwtResult, then: (s: RequestState) => void): void {
  s.identifying = false
  if (s.finished) return
  if (failed(r)) {
    s.errorDetail = r.detail
    // a streaming body may have paused the client socket and will never be read now: close rather than leave a
    // keep-alive connection whose next request would wait behind it
    replyError(s, r.code, s.streamBody !== null)
    return
  }
  apply(s, r)
  then(s)
}

function apply(s: RequestState, who: JwtIdentity): void {
  s.keyId = who.id
  s.org = who.org
  s.tier = who.tier
  s.scale = who.scale
}
