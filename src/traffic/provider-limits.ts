// The provider's own rate limits, as its response headers report them, per upstream (one upstream = one provider
// account: its credentials are the upstream's). When the provider says the account is exhausted — remaining
// requests or tokens 0, or a 429 with Retry-After — every worker stops forwarding to that upstream until the reset
// it named: the request goes to the fallback, or gets 429 LEAKY_UPSTREAM_QUOTA locally with that Retry-After,
// instead of a certain 429 from the provider. The state sits in the generation's shared target table (one slot
// per upstream account), so all workers see it at once.
//
// Headers read:
//   OpenAI, Qwen (DashScope compatible mode), most OpenAI-compatible servers: x-ratelimit-remaining-requests,
//     x-ratelimit-remaining-tokens, x-ratelimit-reset-requests, x-ratelimit-reset-tokens (durations "1s", "6m0s",
//     "20ms")
//   Anthropic: anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{remaining,reset} (reset: RFC 3339)
//   every provider: retry-after on a 429 (seconds, or an HTTP date)
//   the account's limits, for `calibrate: from_headers` limits (src/traffic/calibrate.ts): x-ratelimit-limit-requests,
//     x-ratelimit-limit-tokens; anthropic-ratelimit-requests-limit, anthropic-ratelimit-tokens-limit (else
//     anthropic-ratelimit-input-tokens-limit)
// A header that does not parse is ignored and counted (leaky_provider_headers_malformed_total): a provider that
// changes its format must not stop traffic.
import type { IncomingHttpHeaders } from 'node:http'
import type { TargetTable } from './target-table.js'

/** The slot of an upstream's provider account in the target table: a name no target URL can have. */
export const ACCOUNT = '#account'

/** "6m0s", "1.5s", "20ms", "1h2m" → ms; NaN when it is no such duration. */
export function parseResetDuration(v: string): number {
  if (v === '') return NaN
  let ms = 0
  let at = 0
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/y
  while (at < v.length) {
    re.lastIndex = at
    const m = re.exec(v)
    if (m === null) return NaN
    const n = Number(m[1])
    ms += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000
    at = re.lastIndex
  }
  return ms
}

/** Retry-After: delta seconds or an HTTP date → ms from now; NaN when neither. */
export function parseRetryAfter(v: string, now: number): number {
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Number(v) * 1000
  const t = Date.parse(v)
  return Number.isNaN(t) ? NaN : Math.max(0, t - now)
}

function one(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name]
  return Array.isArray(v) ? v[0] : v
}

const ANTHROPIC_KINDS = ['requests', 'tokens', 'input-tokens', 'output-tokens'] as const

/**
 * Read one response's rate-limit headers into the account slot: the remaining quota (for the gauges), and a block
 * until the reset when none is left. Cheap when the headers are absent (a few property reads).
 */
export function readProviderLimits(table: TargetTable, slot: number, status: number, h: IncomingHttpHeaders, now: number): void {
  // OpenAI / Qwen
  const rr = one(h, 'x-ratelimit-remaining-requests')
  if (rr !== undefined) remains(table, slot, 'requests', rr, one(h, 'x-ratelimit-reset-requests'), now, parseResetDuration)
  const rt = one(h, 'x-ratelimit-remaining-tokens')
  if (rt !== undefined) remains(table, slot, 'tokens', rt, one(h, 'x-ratelimit-reset-tokens'), now, parseResetDuration)
  // Anthropic: tokens, input tokens and output tokens each have their own bucket; the gauge shows the one that binds
  if (one(h, 'anthropic-ratelimit-requests-remaining') !== undefined || one(h, 'anthropic-ratelimit-tokens-remaining') !== undefined ||
    one(h, 'anthropic-ratelimit-input-tokens-remaining') !== undefined) {
    let tokens = Infinity
    for (const k of ANTHROPIC_KINDS) {
      const rem = one(h, `anthropic-ratelimit-${k}-remaining`)
      if (rem === undefined) continue
      const n = remains(table, slot, k === 'requests' ? 'requests' : 'tokens', rem, one(h, `anthropic-ratelimit-${k}-reset`), now, anthropicReset)
      if (k !== 'requests' && n < tokens) tokens = n
    }
    if (tokens !== Infinity) table.setRemaining(slot, 'tokens', tokens)
  }
  limitOf(table, slot, 'requests', one(h, 'x-ratelimit-limit-requests') ?? one(h, 'anthropic-ratelimit-requests-limit'))
  limitOf(table, slot, 'tokens', one(h, 'x-ratelimit-limit-tokens') ?? one(h, 'anthropic-ratelimit-tokens-limit') ?? one(h, 'anthropic-ratelimit-input-tokens-limit'))
  if (status === 429) {
    const ra = one(h, 'retry-after')
    if (ra !== undefined) {
      const ms = parseRetryAfter(ra, now)
      if (Number.isNaN(ms)) table.countMalformed(slot)
      else table.blockQuota(slot, now + ms)
    }
  }
}

/** A reported limit: a positive integer, else ignored and counted. */
function limitOf(table: TargetTable, slot: number, kind: 'requests' | 'tokens', v: string | undefined): void {
  if (v === undefined) return
  const n = /^\d+$/.test(v.trim()) ? Number(v) : 0
  if (n > 0) {
    if (table.providerLimit(slot, kind) !== n) table.setProviderLimit(slot, kind, n)
  } else {
    table.countMalformed(slot)
  }
}

function anthropicReset(v: string, now: number): number {
  const t = Date.parse(v)
  return Number.isNaN(t) ? NaN : Math.max(0, t - now)
}

/** One remaining/reset pair; returns the remaining count (NaN: malformed, counted and ignored). */
function remains(
  table: TargetTable, slot: number, kind: 'requests' | 'tokens', remaining: string, reset: string | undefined, now: number,
  parseReset: (v: string, now: number) => number,
): number {
  const n = /^\d+$/.test(remaining.trim()) ? Number(remaining) : NaN
  if (Number.isNaN(n)) {
    table.countMalformed(slot)
    return NaN
  }
  table.setRemaining(slot, kind, n)
  // 0 left: blocked until the reset; without a (readable) reset time, the provider's own 429 will say when
  if (n > 0 || reset === undefined) return n
  const ms = parseReset(reset, now)
  if (Number.isNaN(ms)) table.countMalformed(slot)
  else table.blockQuota(slot, now + ms)
  return n
}
