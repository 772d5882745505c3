// Stage 9 — account: runs exactly once per request, however it ended (response complete, error reply, upstream
// failure, client abort). Releases the admit slot, reconciles token usage on the buckets and writes one access line.
import type { RequestState } from '../request-state.js'
import { ctx } from '../context.js'
import { ERRORS } from '../../errors.js'

/** What stream needs from a usage meter: bytes in → bytes to forward; `rewrites` when it may drop bytes. */
export interface Meter {
  readonly rewrites: boolean
  write(chunk: Buffer): Buffer
  end(): Buffer
}

/** Start reading usage from the response, for LLM routes; null when there is nothing to meter. */
export function startMetering(_s: RequestState, _status: number, _sse: boolean): Meter | null {
  return null
}

export function account(s: RequestState): void {
  if (s.accounted) return
  s.accounted = true
  if (s.inflightTaken) {
    Atomics.sub(ctx.inflight, 0, 1)
    ctx.local--
  }
  const status = s.errorCode === 'LEAKY_CLIENT_CLOSED' ? 499 : s.status !== 0 ? s.status : s.errorCode !== null ? ERRORS[s.errorCode].status : 0
  if (!s.plan.accessLog) return
  // one flat line; the path is logged without its query string, so a ?key= credential never reaches a log
  ctx.logger.info({
    msg: 'access',
    req_id: s.requestId,
    trace_id: s.traceId,
    method: s.method,
    path: s.url,
    route: s.route === null ? null : s.route.path,
    upstream: s.upstream === null ? null : s.upstream.name,
    status,
    error: s.errorCode,
    detail: s.errorDetail === '' ? undefined : s.errorDetail,
    duration_ms: round(performance.now() - s.startMs),
    ttfb_ms: s.ttfbMs < 0 ? null : round(s.ttfbMs),
    bytes_in: s.bytesIn,
    bytes_out: s.bytesOut,
    client_ip: s.clientIp,
  })
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}
