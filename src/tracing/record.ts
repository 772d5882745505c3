// What a traced request remembers on its way through the stages beyond what RequestState already holds: when the
// limit decided, and each upstream attempt. Allocated only for a sampled request, or — for one that was not
// sampled — at its first failed attempt (a tail signal: such a request is exported anyway, see hooks.ts).

export class AttemptRecord {
  spanId: string
  upstream: string
  origin: string
  start: number
  end = -1
  status = 0
  /** why the attempt was given up for another (retry, fallback); '' for the attempt that ended the request */
  reason = ''
  /** the breaker let this attempt through as its half-open trial */
  trial: boolean

  constructor(spanId: string, upstream: string, origin: string, start: number, trial: boolean) {
    this.spanId = spanId
    this.upstream = upstream
    this.origin = origin
    this.start = start
    this.trial = trial
  }
}

export class TraceRecord {
  /** performance.now() when the limit stage decided; -1: it did not run (or the route has no limits) */
  limitAt = -1
  /** the limit stage waited for Redis (it went PENDING) before it decided */
  limitWaited = false
  readonly attempts: AttemptRecord[] = []
  /** upstreams passed over because their breaker was open: [name, performance.now()] pairs, flat */
  readonly breakerOpen: Array<string | number> = []
  /** the tail signal met on the way (attempt_failed, breaker_open); '' while none */
  tail = ''
}
