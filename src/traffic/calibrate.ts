// `calibrate: from_headers` on a `per: upstream` limit: the limit's rate follows the limit the provider reports for
// the upstream's account (x-ratelimit-limit-requests / -tokens; anthropic-ratelimit-requests-limit /
// -tokens-limit), which OpenAI and Anthropic state per minute. Until the first report the configured rate applies;
// from then on the amount is the reported one restated for the limit's period (a limit of 600/min over a reported
// 500 becomes 500/min; 10/s becomes 8.33/s), and the burst scales by the same factor (at least 1). The same bucket
// is charged (name and scope are unchanged; only T and tau differ, as for a tier's scale), so the change takes effect
// on the next request without losing what the bucket holds. Reports come only from upstreams that send their own
// credentials (a client's own key reports that client's limit, src/traffic/provider-limits.ts).
//
// Per request: one read of the shared account slot and, when the reported limit changed, one compile per distinct
// value in this worker (kept, at most MAX_VARIANTS per limit).
import { compileLimit, type CompiledLimit } from '../limiter/limit.js'
import type { TargetTable } from './target-table.js'

/** The per-minute unit the providers report limits in. */
const MINUTE_MS = 60_000
/** Distinct reported values kept compiled per limit; past it the cache starts again (a provider changes its limits rarely). */
const MAX_VARIANTS = 32

const variants = new Map<CompiledLimit, Map<number, CompiledLimit>>()

/** The limit as the upstream's provider last reported it (l itself until it has reported one). */
export function calibrated(l: CompiledLimit, table: TargetTable, account: number): CompiledLimit {
  const reported = table.providerLimit(account, l.unit === 'requests' ? 'requests' : 'tokens')
  if (reported <= 0) return l
  let byValue = variants.get(l)
  if (byValue === undefined) variants.set(l, (byValue = new Map()))
  let v = byValue.get(reported)
  if (v === undefined) {
    if (byValue.size >= MAX_VARIANTS) byValue.clear()
    const amount = (reported * l.periodMs) / MINUTE_MS
    const factor = amount / l.amount
    v = compileLimit({ name: l.name, per: l.per, unit: l.unit, amount, period_ms: l.periodMs, burst: Math.max(1, l.burst * factor) })
    byValue.set(reported, v)
  }
  return v
}
