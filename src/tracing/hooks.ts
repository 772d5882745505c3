// The tracing hooks the stages call, one per stage event: accept decides (head sampling), limit and forward note
// times, account decides the tail and hands finished spans to the worker's outbox. With no tracing section every
// hook returns after one field read; for a request that is neither sampled nor failing nothing is allocated.
import type { RequestState } from '../server/request-state.js'
import type { Upstream, Target } from '../upstream/upstream.js'
import type { Usage } from '../llm/usage.js'
import type { TracingPlan } from './plan.js'
import { sampled } from './sampler.js'
import { AttemptRecord, TraceRecord } from './record.js'
import { spanId } from './ids.js'
import { countInvalid, pushSpan } from './sink.js'
import { requestSpans } from './spans.js'

/**
 * accept: the head decision for a request whose trace context is settled (s.traceId, s.spanId, the parent's).
 * Returns the flags of the traceparent sent upstream: our decision, as an OpenTelemetry SDK would propagate it.
 */
export function headSample(s: RequestState, t: TracingPlan, parentFlags: number, tracestate: string): string {
  s.traceState = tracestate
  if (!sampled(t.sampler, s.traceId, parentFlags)) return '00'
  s.sampled = true
  s.trace = new TraceRecord()
  return '01'
}

/** accept: a traceparent that is not W3C version 00 with valid ids was replaced by a new trace. */
export function invalidTraceparent(s: RequestState): void {
  if (s.plan.tracing !== null) countInvalid()
}

/** limit: the decision waits for Redis (the stage returns PENDING). */
export function limitPending(s: RequestState): void {
  if (s.trace !== null) s.trace.limitWaited = true
}

/** limit: the decision is made (allowed or denied; after Redis answered for cluster limits). */
export function limitDecided(s: RequestState): void {
  if (s.trace !== null) s.trace.limitAt = performance.now()
}

/** forward: an attempt is being sent. Returns the traceparent for it: a sampled attempt gets a span of its own. */
export function attemptStarted(s: RequestState, up: Upstream, t: Target, trial: boolean): string {
  s.attemptAt = performance.now()
  const r = s.trace
  if (r === null || !s.sampled) return s.traceparent
  const a = new AttemptRecord(spanId(), up.name, t.origin, s.attemptAt, trial)
  r.attempts.push(a)
  return `00-${s.traceId}-${a.spanId}-01`
}

/**
 * forward: the current attempt is given up for another (retry, fallback). That is a tail signal: a request that
 * was not sampled gets its record now, so its spans show every attempt if it is exported at the end.
 */
export function attemptFailed(s: RequestState, up: Upstream, status: number, reason: string): void {
  if (s.plan.tracing === null) return
  const r = s.trace ?? (s.trace = new TraceRecord())
  if (r.tail === '') r.tail = 'attempt_failed'
  let a = r.attempts.length < s.attempts ? null : r.attempts[r.attempts.length - 1]
  if (a === null) {
    a = new AttemptRecord(spanId(), up.name, up.targets[s.target].origin, s.attemptAt, false)
    r.attempts.push(a)
  }
  a.end = performance.now()
  a.status = status
  a.reason = reason
}

/** forward: `up` is passed over, its breaker open (a tail signal, like a failed attempt). */
export function breakerOpen(s: RequestState, up: Upstream): void {
  if (s.plan.tracing === null) return
  const r = s.trace ?? (s.trace = new TraceRecord())
  if (r.tail === '') r.tail = 'breaker_open'
  r.breakerOpen.push(up.name, performance.now())
}

/**
 * account: the request is over. Sampled → exported; not sampled → exported only on a tail signal: a 5xx, an
 * upstream error or a failed attempt on the way, a 429 when sample_denied is on.
 */
export function requestEnded(s: RequestState, status: number, usage: Usage | null, endMs: number): void {
  const t = s.plan.tracing
  // no trace context: refused by accept before it read the traceparent (framing, header size), never a 5xx
  if (t === null || s.traceId === '') return
  let tail = ''
  if (!s.sampled) {
    tail = tailReason(s, t, status)
    if (tail === '') return
  }
  const spans = requestSpans(s, status, usage, endMs, tail)
  for (let i = 0; i < spans.length; i++) pushSpan(spans[i])
}

function tailReason(s: RequestState, t: TracingPlan, status: number): string {
  if (status >= 500) return 'server_error'
  if (s.errorCode !== null && s.errorCode.startsWith('LEAKY_UPSTREAM')) return 'upstream_error'
  if (s.trace !== null && s.trace.tail !== '') return s.trace.tail
  if (status === 429 && t.sampleDenied) return 'denied'
  return ''
}
