// Stage 3 — identify: who is asking. On `auth: key` routes the client presents a virtual key (Authorization:
// Bearer, x-api-key, x-goog-api-key or ?key=); it is looked up by its SHA-256, so the config never needs the plain
// key and the key itself never leaves this function (stripped before forward, never logged). `auth: none` routes
// are scoped by client IP, decided in accept. `auth: jwt`: a bearer JWT from the same places, stages/jwt.ts.
import { createHash } from 'node:crypto'
import { Next, type RequestState } from '../request-state.js'
import { replyError } from '../reply.js'
import { identifyJwt } from './jwt.js'
import { presentedKey } from '../credentials.js'
import type { KeyConfig } from '../../config/index.js'
import { routeAllowed, runtimeKey } from '../../identity/runtime-keys.js'

export interface KeyIdentity {
  id: string
  org: string
  tier: string
  /** the tier's scale for per-key limits */
  scale: number
}

export function compileKeys(keys: KeyConfig[]): Map<string, KeyIdentity> {
  const m = new Map<string, KeyIdentity>()
  for (const k of keys) m.set(k.sha256, { id: k.id, org: k.org ?? '', tier: k.tier ?? '', scale: k.scale })
  return m
}

export function identify(s: RequestState, then: (s: RequestState) => void): Next {
  const auth = s.route!.auth
  if (auth === 'none') return Next.CONTINUE
  // bearer JWTs: stages/jwt.ts (PENDING while a token not seen before is verified)
  if (auth === 'jwt') return identifyJwt(s, then)
  const presented = presentedKey(s)
  if (presented === '') return replyError(s, 'LEAKY_UNAUTHORIZED', false, null, 'missing API key: send it as Authorization: Bearer, x-api-key, x-goog-api-key or ?key=')
  const hash = createHash('sha256').update(presented).digest('hex')
  const who = s.plan.keys.get(hash)
  if (who === undefined) return identifyRuntime(s, hash)
  s.keyId = who.id
  s.org = who.org
  s.tier = who.tier
  s.scale = who.scale
  return Next.CONTINUE
}

/** Keys made at run time (`leaky key create`, /admin/keys): revoked, expired, or limited to some routes and models. */
function identifyRuntime(s: RequestState, hash: string): Next {
  const who = runtimeKey(hash)
  if (who === undefined) return replyError(s, 'LEAKY_UNAUTHORIZED', false, null, 'unknown API key')
  if (who.revoked) return replyError(s, 'LEAKY_UNAUTHORIZED', false, null, 'API key revoked')
  if (who.expiresAt !== Infinity && who.expiresAt <= Date.now()) {
    return replyError(s, 'LEAKY_KEY_EXPIRED', false, null, who.rotated ? 'API key was rotated and its grace period has ended' : 'API key expired')
  }
  s.keyId = who.id
  if (!routeAllowed(who, s.url)) return replyError(s, 'LEAKY_KEY_FORBIDDEN', false, null, `this API key may not use ${s.url}`)
  s.org = who.org
  s.tier = who.tier
  s.scale = who.tier === '' ? 1 : (s.plan.tierScales.get(who.tier) ?? 1)
  s.keyModels = who.models
  return Next.CONTINUE
}

/** After the estimate: a key limited to some models may only name one of them (an unknown model is refused). */
export function permitModel(s: RequestState): Next {
  // on a models route the name the client asked for is granted as well as the model it resolved to
  if (s.keyModels === null || s.keyModels.has(s.model) || (s.modelCall !== null && s.keyModels.has(s.modelCall.asked))) return Next.CONTINUE
  return replyError(s, 'LEAKY_KEY_FORBIDDEN', false, null, s.model === '' ? 'this API key is limited to some models, and this request names none' : `this API key may not use model "${s.model}"`)
}
