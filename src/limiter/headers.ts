// Rate-limit response headers from a policy decision. Constant parts (quoted names, q and w, limit values) were
// rendered by compileLimit; here only numbers are appended. Headers are written as a flat [name, value, ...] array.
//
//   Retry-After                      on DENIED: whole seconds, rounded up, at least 1; on FULL/BUSY (503): 1
//   RateLimit-Policy / RateLimit     draft-ietf-httpapi-ratelimit-headers: `"name";q=AMOUNT;w=SECONDS` and
//                                    `"name";r=REMAINING;t=SECONDS` for the deciding limit when denied, else for the
//                                    tightest one (least remaining as a fraction of its burst)
//   x-ratelimit-{limit,remaining,reset}-{requests,tokens}
//                                    OpenAI style, for the tightest requests limit and the tightest tokens limit
//                                    (least remaining; when denied, the deciding limit for its unit). reset is the
//                                    time until the bucket is empty again, as a Go-style duration ("20ms", "6m0s").
// REMAINING = units that would conform now = floor((tau - drain time) / T), clamped to [0, burst].
// t / reset = time until the bucket is back to its initial (empty) state.
import type { Charges } from './policy.js'
import { Status } from './table.js'

export const H_RETRY_AFTER = 'Retry-After'
export const H_POLICY = 'RateLimit-Policy'
export const H_STATE = 'RateLimit'
export const H_LIMIT_REQUESTS = 'x-ratelimit-limit-requests'
export const H_REMAINING_REQUESTS = 'x-ratelimit-remaining-requests'
export const H_RESET_REQUESTS = 'x-ratelimit-reset-requests'
export const H_LIMIT_TOKENS = 'x-ratelimit-limit-tokens'
export const H_REMAINING_TOKENS = 'x-ratelimit-remaining-tokens'
export const H_RESET_TOKENS = 'x-ratelimit-reset-tokens'

/** Append the rate-limit headers for `req`'s decision to `out` as name, value pairs. */
export function rateLimitHeaders(req: Charges, out: string[]): void {
  const st = req.status
  if (st === Status.FULL || st === Status.BUSY) {
    out.push(H_RETRY_AFTER, '1')
    return
  }
  const n = req.length
  if (n === 0) return
  const denied = st !== Status.OK
  let ietf = -1
  let ietfFrac = 0
  let reqIdx = -1
  let reqRem = 0
  let tokIdx = -1
  let tokRem = 0
  if (denied) {
    ietf = req.decider
    if (req.limits[ietf].unit === 'requests') reqIdx = ietf
    else tokIdx = ietf
  }
  for (let i = 0; i < n; i++) {
    if (denied && i !== req.decider) continue // other buckets were rolled back: their numbers are not known
    const l = req.limits[i]
    const rem = remaining(req, i)
    const frac = rem / l.burst
    if (ietf < 0 || (!denied && frac < ietfFrac)) {
      ietf = i
      ietfFrac = frac
    }
    if (l.unit === 'requests') {
      if (reqIdx < 0 || (!denied && rem < reqRem)) {
        reqIdx = i
        reqRem = rem
      }
    } else if (tokIdx < 0 || (!denied && rem < tokRem)) {
      tokIdx = i
      tokRem = rem
    }
  }
  if (st === Status.DENIED) out.push(H_RETRY_AFTER, String(Math.max(1, Math.ceil(req.retryNs / 1e9))))
  const l = req.limits[ietf]
  out.push(H_POLICY, l.policyItem)
  out.push(H_STATE, `${l.stateItem}${remaining(req, ietf)};t=${Math.ceil(req.afterNs(ietf) / 1e9)}`)
  if (reqIdx >= 0) {
    out.push(H_LIMIT_REQUESTS, req.limits[reqIdx].limitValue)
    out.push(H_REMAINING_REQUESTS, String(remaining(req, reqIdx)))
    out.push(H_RESET_REQUESTS, goDuration(req.afterNs(reqIdx)))
  }
  if (tokIdx >= 0) {
    out.push(H_LIMIT_TOKENS, req.limits[tokIdx].limitValue)
    out.push(H_REMAINING_TOKENS, String(remaining(req, tokIdx)))
    out.push(H_RESET_TOKENS, goDuration(req.afterNs(tokIdx)))
  }
}

/** Units of charge i's bucket that would conform now: floor((tau - drain time) / T), within [0, burst]. */
export function remaining(req: Charges, i: number): number {
  const l = req.limits[i]
  const r = Math.floor((l.tauNs - req.afterNs(i)) / l.tNs)
  return r < 0 ? 0 : r > l.burst ? l.burst : r
}

/**
 * OpenAI's reset format (Go time.Duration style, millisecond precision, rounded up): "0s", "20ms", "1s", "1.5s",
 * "6m0s", "1h2m3.25s".
 */
export function goDuration(ns: number): string {
  if (!(ns > 0)) return '0s'
  const ms = Math.ceil(ns / 1e6)
  if (ms < 1000) return `${ms}ms`
  const h = Math.floor(ms / 3_600_000)
  const m = Math.floor((ms % 3_600_000) / 60_000)
  const rest = ms % 60_000
  const sec = rest % 1000 === 0 ? String(rest / 1000) : (rest / 1000).toFixed(3).replace(/0+$/, '')
  return h > 0 ? `${h}h${m}m${sec}s` : m > 0 ? `${m}m${sec}s` : `${sec}s`
}
