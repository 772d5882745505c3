// Rate-limit response headers from a policy decision. Headers are written as a flat [name, value, ...] array.
//
// What the numbers mean. A leaky bucket has no window that resets: what a client may send right now is bounded by
// the bucket's capacity, its burst. So the stated limit is the burst, and remaining is counted against it — OpenAI
// documents x-ratelimit-limit-* as "the maximum allowed before exhaustion", which for a bucket is its capacity. The
// rate (amount per period) is what q/w of RateLimit-Policy works out to, and the 429 message says it in words.
//
//   x-ratelimit-limit-{requests,tokens}      the burst (after the key's tier scale)
//   x-ratelimit-remaining-{requests,tokens}  units that would conform now: floor((tau - drain time) / T), within
//                                            [0, burst], so never above the limit
//   x-ratelimit-reset-{requests,tokens}      time until the bucket is empty again, i.e. remaining is back to the
//                                            limit, as a Go-style duration ("20ms", "6m0s"); a calendar window
//                                            (window: calendar) resets at its end
//   RateLimit-Policy  `"name";q=BURST;w=SECONDS`  draft-ietf-httpapi-ratelimit-headers: q is the burst, w the
//                                            seconds a full bucket takes to drain (burst / rate, whole seconds,
//                                            rounded up, at least 1), so q/w is the sustained rate
//   RateLimit         `"name";r=REMAINING;t=SECONDS`  r as remaining above (r <= q), t = seconds until r is back to
//                                            q, rounded up (t > w only while usage reconciled after the fact keeps
//                                            a bucket over its burst)
//   Retry-After       DENIED: whole seconds until the request would conform, rounded up, at least 1; FULL/BUSY
//                     (503): 1, and nothing else
//
// Which limits. The x-ratelimit-* pairs describe, per unit, the limit with the least remaining; RateLimit/-Policy the
// one with the least remaining as a fraction of its burst. On a denial the deciding limit is reported for its unit
// and for RateLimit; the other unit still gets its tightest limit: every limit of a denied request is reported as its
// bucket stands without this request (policy.ts refunds or peeks them), so a 429 carries both families too.
import type { CompiledLimit } from './limit.js'
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
  const { limits, tats } = req
  const denied = st !== Status.OK
  let ietf = -1
  let ietfFrac = 0
  let reqIdx = -1
  let reqRem = 0
  let tokIdx = -1
  let tokRem = 0
  // a denial names its decider: that one is reported for its unit whatever the others hold
  if (denied) {
    ietf = req.decider
    if (limits[ietf].unit === 'requests') reqIdx = ietf
    else tokIdx = ietf
  }
  const reqFixed = reqIdx >= 0
  const tokFixed = tokIdx >= 0
  for (let i = 0; i < n; i++) {
    if (tats[i] < 0n) continue // UNKNOWN_TAT: its slot was busy, nothing to say about it
    const l = limits[i]
    const rem = remaining(req, i)
    if (!denied) {
      const frac = rem / l.burst
      if (ietf < 0 || frac < ietfFrac) {
        ietf = i
        ietfFrac = frac
      }
    }
    if (l.unit === 'requests') {
      if (!reqFixed && (reqIdx < 0 || rem < reqRem)) {
        reqIdx = i
        reqRem = rem
      }
    } else if (!tokFixed && (tokIdx < 0 || rem < tokRem)) {
      tokIdx = i
      tokRem = rem
    }
  }
  if (ietf < 0) return
  if (st === Status.DENIED) out.push(H_RETRY_AFTER, String(Math.max(1, Math.ceil(req.retryNs / 1e9))))
  const l = limits[ietf]
  out.push(H_POLICY, rendered(l).policy)
  out.push(H_STATE, `${l.stateItem}${remaining(req, ietf)};t=${Math.ceil(req.resetNs(ietf) / 1e9)}`)
  if (reqIdx >= 0) {
    out.push(H_LIMIT_REQUESTS, rendered(limits[reqIdx]).limit)
    out.push(H_REMAINING_REQUESTS, String(remaining(req, reqIdx)))
    out.push(H_RESET_REQUESTS, goDuration(req.resetNs(reqIdx)))
  }
  if (tokIdx >= 0) {
    out.push(H_LIMIT_TOKENS, rendered(limits[tokIdx]).limit)
    out.push(H_REMAINING_TOKENS, String(remaining(req, tokIdx)))
    out.push(H_RESET_TOKENS, goDuration(req.resetNs(tokIdx)))
  }
}

/** The constant header parts of a limit: rendered once per compiled limit (a plan compiles each once). */
interface Rendered {
  /** `"name";q=BURST;w=SECONDS`, the RateLimit-Policy item */
  policy: string
  /** the burst, as the x-ratelimit-limit-* value */
  limit: string
}

const renderings = new WeakMap<CompiledLimit, Rendered>()

function rendered(l: CompiledLimit): Rendered {
  let r = renderings.get(l)
  if (r === undefined) {
    r = { policy: policyItem(l), limit: String(l.burst) }
    renderings.set(l, r)
  }
  return r
}

/**
 * The RateLimit-Policy item: q = burst, w = the seconds a full bucket takes to drain, rounded up. Worked out from the
 * definition (burst * period / amount) rather than tau, whose T is rounded to whole ns, so a minute stays 60, not 61.
 */
export function policyItem(l: CompiledLimit): string {
  const drainMs = Math.round((l.burst * l.periodMs) / l.amount)
  // stateItem is the label (an sf-string, rendered by compileLimit) followed by ';r='
  return `${l.stateItem.slice(0, -3)};q=${l.burst};w=${Math.max(1, Math.ceil(drainMs / 1000))}`
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
