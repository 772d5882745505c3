// Stage 7 — forward: build the upstream request (headers rewritten once, credentials policy, forwarding headers)
// and hand it to the target's undici pool. undici's own headersTimeout/bodyTimeout implement first_byte and idle,
// so no timer of ours is armed per request.
//
// The dispatch handler is a Forward: the attempt logic, owning the stream stage's ResponseStream by composition, so
// the response path is a line — forward → stream → account. Forward decides whether an attempt's answer is kept;
// the callbacks of the kept one go on to the stream, which relays them to the client. When an attempt fails before
// anything reached the client — connect error, first-byte timeout, reset before headers, or a status listed in
// retry.on (that response is dropped, never relayed) — and the body can be sent again, the next attempt goes to the
// next target after a backoff, up to retry.attempts; then to the fallback upstream, each hop of the chain once,
// with that upstream's own targets, headers, timeouts, retries and breaker. A breaker that is open sends the
// request down the chain at once; at its end, 503 LEAKY_UPSTREAM_UNAVAILABLE.
import { type RequestState } from '../request-state.js'
import { dropClientCredentials } from '../credentials.js'
import { hasBody, StreamingBody } from '../body.js'
import { ResponseStream, upstreamErrorCode } from './stream.js'
import { replyError, untranslatable } from '../reply.js'
import { ABORT_ERRORS } from '../../errors.js'
import { ctx } from '../context.js'
import type { Upstream } from '../../upstream/upstream.js'
import { Failure, failureOf } from '../../upstream/retry.js'
import { Admission, Transition, type Breaker } from '../../upstream/breaker.js'
import { metrics, UpstreamResult } from '../../observability/metrics.js'
import { CacheTee } from '../../cache/tee.js'
import { attemptFailed, attemptStarted, breakerOpen } from '../../tracing/hooks.js'
import type { Dispatcher } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import { readProviderLimits } from '../../traffic/provider-limits.js'
import { enterBulkheads, retryAllowed } from '../../traffic/bulkhead.js'
import { mirror } from '../../traffic/mirror.js'
type DispatchController = Dispatcher.DispatchController

export function forward(s: RequestState): void {
  // the bulkheads of its route and upstream (and its adaptive limit): a full one sheds the request (503) or queues
  // it (forwardAdmitted runs when it gets its place) before any upstream work
  if (enterBulkheads(s, forwardAdmitted)) forwardAdmitted(s)
}

/** The request holds its bulkhead places (at once, or after waiting in its upstream's queue): send it. */
function forwardAdmitted(s: RequestState): void {
  // the shadow copy leaves with the client's headers, before this request's own are added
  if (s.route!.mirror !== null) mirror(s, s.route!.mirror)
  const f = new Forward(s)
  // a cache leader's answer is copied to the cache owner on its way (src/cache/tee.ts)
  if (s.cache !== null) f.handler = s.cache.tee = new CacheTee(f, s.cache)
  f.go()
}

/**
 * A metered request asks its upstream not to compress: the meter reads plain bytes, and nobody spends CPU on a
 * compression the proxy would undo (content-coding.ts decodes what comes compressed anyway).
 */
function askIdentity(h: string[]): void {
  for (let i = 0; i < h.length; i += 2) {
    if (h[i] === 'accept-encoding') {
      h[i + 1] = 'identity'
      return
    }
  }
  h.push('accept-encoding', 'identity')
}

/** The abort reason of a response dropped for another attempt (never reaches the client nor the log). */
const DROPPED = Object.assign(new Error(ABORT_ERRORS.LEAKY_RETRY.message), { code: 'LEAKY_RETRY' satisfies keyof typeof ABORT_ERRORS })

/** The metrics result of a failed attempt, by Failure. */
const RESULT_OF: readonly UpstreamResult[] = [
  UpstreamResult.OK, UpstreamResult.CONNECT, UpstreamResult.TIMEOUT, UpstreamResult.RESET, UpstreamResult.INVALID,
]

export class Forward implements Dispatcher.DispatchHandler {
  readonly s: RequestState
  /** relays the kept attempt's response to the client */
  readonly stream: ResponseStream
  /** attempts sent, all upstreams of the chain together */
  attempts = 0
  /** attempts sent to the current upstream (s.upstream) */
  tries = 0
  /** s.headers.length before the current upstream's own headers: another attempt rebuilds from there */
  clientHeaders = -1
  /** the current attempt is its upstream breaker's half-open trial */
  trial = false
  /** runs the next attempt; bound on the first retry only, so the hot path creates no closure for it */
  again: (() => void) | null = null
  /** what undici calls: this, or the cache tee wrapping it */
  handler: Dispatcher.DispatchHandler | null = null
  /** the upstream whose target counts this attempt in flight (null: no attempt in flight) */
  held: Upstream | null = null
  heldTarget = 0
  /** when the attempt was sent (performance.now()), for the latency EWMA */
  sentAt = 0
  /** the target that just failed, avoided by the next attempt on the same upstream (-1: none) */
  avoid = -1
  /** another() decided: the next attempt is a retry on the same upstream (else the fallback) */
  retryNext = false

  constructor(s: RequestState) {
    this.s = s
    this.stream = new ResponseStream(s)
  }

  /** the current attempt's controller, kept by the stream (null between attempts) */
  get controller(): DispatchController | null {
    return this.stream.controller
  }

  set controller(c: DispatchController | null) {
    this.stream.controller = c
  }

  onRequestStart(controller: DispatchController): void {
    this.stream.onRequestStart(controller)
  }

  onResponseStart(controller: DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (this.s.finished) return controller.abort(new Error('response no longer wanted'))
    if (this.upstreamAnswered(controller, statusCode, headers)) return
    this.stream.onResponseStart(controller, statusCode, headers)
  }

  onResponseData(controller: DispatchController, data: Buffer): void {
    this.stream.onResponseData(controller, data)
  }

  onResponseEnd(): void {
    this.releaseTarget()
    this.stream.onResponseEnd()
  }

  onResponseError(controller: DispatchController | undefined, err: Error): void {
    // undici passes no controller when the connection failed before the request started
    if (this.upstreamFailed(controller, err)) return
    this.stream.onResponseError(controller, err)
  }

  /**
   * Send the next attempt to s.upstream or, while its breaker refuses or none of its targets is usable (ejected,
   * unhealthy), to the next upstream of its fallback chain. At the end of the chain: 503 LEAKY_UPSTREAM_UNAVAILABLE
   * with the soonest Retry-After of the refusing upstreams.
   */
  go(): void {
    const s = this.s
    let up = s.upstream!
    let wait = 0
    for (let hops = 0; ; hops++) {
      let ra = 0
      if (up.breaker !== null) {
        const now = performance.now()
        const a = up.breaker.admit(now)
        if (a === Admission.DENY) {
          ra = up.breaker.retryAfter(now)
          breakerOpen(s, up)
          s.errorDetail = `breaker open: ${up.name}`
        } else {
          this.trial = a === Admission.TRIAL
        }
      }
      let quota = false
      if (ra === 0 && up.ownCredentials) {
        // the provider said this account is exhausted until then: forwarding now would only earn its 429
        const b = up.balancer
        const now = Date.now()
        const until = b.table.quotaUntil(b.account)
        if (until > now) {
          if (up.breaker !== null) up.breaker.release(this.trial)
          this.trial = false
          b.table.countRefused(b.account)
          ra = Math.max(1, Math.ceil((until - now) / 1000))
          quota = true
          s.errorDetail = `provider quota exhausted: ${up.name}`
        }
      }
      if (ra === 0) {
        const now = Date.now()
        const i = up.balancer.choose(now, this.avoid)
        if (i >= 0) {
          this.useTarget(up, i)
          break
        }
        // every target ejected or unhealthy: the breaker's admission goes unused
        if (up.breaker !== null) up.breaker.release(this.trial)
        this.trial = false
        ra = up.balancer.retryAfter(now, up.health?.interval ?? 1000)
        s.errorDetail = `no usable target: ${up.name}`
      }
      if (wait === 0 || ra < wait) wait = ra
      const next = up.fallback === '' ? undefined : s.plan.upstreams.get(up.fallback)
      // a models route's next choice (another provider, translated) when the upstream has no fallback of its own
      if (next === undefined && s.modelCall !== null && s.modelCall.hasNext()) {
        if (!s.modelCall.next(s, untranslatable)) return
        this.tries = 0
        up = s.upstream!
        continue
      }
      // validation rules out fallback loops; the hop bound is only a guard against a plan built some other way
      if (next === undefined || hops >= s.plan.upstreams.size) {
        // the last hop's own reason: its provider's quota (429, the wait it named), or a failure (503)
        if (quota) replyError(s, 'LEAKY_UPSTREAM_QUOTA', false, ['retry-after', String(ra)])
        else replyError(s, 'LEAKY_UPSTREAM_UNAVAILABLE', false, ['retry-after', String(wait)])
        return
      }
      this.switchTo(next)
      up = next
    }
    this.send()
  }

  /** The attempt goes to target i of `up`: its base path replaces the previous target's. */
  useTarget(up: Upstream, i: number): void {
    const s = this.s
    if (i === s.target) return
    const rel = s.upstreamPath.slice(up.targets[s.target].basePath.length)
    s.target = i
    s.upstreamPath = up.targets[i].basePath + rel
  }

  /** The attempt in flight no longer counts on its target (answered to the end, failed, dropped). */
  releaseTarget(): void {
    const up = this.held
    if (up === null) return
    this.held = null
    up.balancer.release(this.heldTarget)
  }

  /** Passive outlier detection: a failure of the current attempt's target; logs an ejection it causes. */
  targetFailed(up: Upstream): void {
    const ms = up.balancer.failed(this.s.target, Date.now())
    if (ms > 0) this.ejected(up, ms)
  }

  ejected(up: Upstream, ms: number): void {
    ctx.logger.warn({ msg: 'target ejected', upstream: up.name, target: up.targets[this.s.target].origin + up.targets[this.s.target].basePath, ejection_ms: ms, ejections: up.balancer.table.ejections(up.balancer.slots[this.s.target]) })
  }

  /** One attempt: the upstream's headers on top of the client's, then dispatch. */
  send(): void {
    const s = this.s
    const up = s.upstream!
    const h = s.headers
    // another attempt: drop the previous upstream's headers (its credentials above all) before adding this one's
    if (this.clientHeaders >= 0) h.length = this.clientHeaders
    else if (s.shape !== null && s.shape !== 'other') askIdentity(h)
    if (up.ownCredentials || s.route!.auth === 'key') dropClientCredentials(s)
    this.clientHeaders = h.length
    const t = up.targets[s.target]
    const inj = up.injected
    for (let i = 0; i < inj.length; i += 2) h.push(inj[i], inj[i + 1])
    h.push(
      'host', up.preserveHost && s.host !== '' ? s.host : t.host,
      'x-forwarded-for', s.forwardedFor,
      'x-forwarded-proto', 'http',
      'x-request-id', s.requestId,
      'traceparent', s.plan.tracing === null ? s.traceparent : attemptStarted(s, up, t, this.trial),
    )
    if (s.host !== '') h.push('x-forwarded-host', s.host)

    let body: Dispatcher.DispatchOptions['body'] = null
    if (s.body !== null) {
      body = s.body.length > 0 ? s.body : null
    } else if (hasBody(s)) {
      if (s.contentLength >= 0) h.push('content-length', String(s.contentLength))
      body = s.streamBody ?? new StreamingBody(s)
    }

    this.attempts++
    this.tries++
    s.attempts = this.attempts
    up.balancer.acquire(s.target)
    this.held = up
    this.heldTarget = s.target
    this.sentAt = performance.now()
    try {
      t.pool.dispatch(
        {
          path: s.query === '' ? s.upstreamPath : `${s.upstreamPath}?${s.query}`,
          method: s.method as Dispatcher.HttpMethod,
          headers: h,
          body,
          headersTimeout: up.firstByteTimeout,
          bodyTimeout: up.idleTimeout,
          blocking: true,
        },
        this.handler ?? this,
      )
    } catch (err) {
      // dispatch throws synchronously only for invalid arguments (e.g. a header value undici refuses)
      if (up.breaker !== null) up.breaker.release(this.trial)
      this.releaseTarget()
      s.errorDetail = (err as Error).message
      replyError(s, 'LEAKY_BAD_REQUEST')
    }
  }

  /**
   * The upstream answered with `status` and nothing of it has reached the client. Returns true when the response is
   * dropped because another attempt takes over (retry, fallback).
   */
  upstreamAnswered(controller: DispatchController, status: number, headers: IncomingHttpHeaders): boolean {
    const up = this.s.upstream!
    // the provider's limits are the upstream's own only when it sends its own credentials; with the client's key
    // forwarded, they are that client's, not everyone's
    if (up.ownCredentials) readProviderLimits(up.balancer.table, up.balancer.account, status, headers, Date.now())
    if (up.breaker !== null) this.record(up, up.breaker, status >= 500)
    const ms = up.balancer.answered(this.s.target, performance.now() - this.sentAt, status, Date.now())
    if (ms > 0) this.ejected(up, ms)
    if (!up.retry.onStatus(status) || !this.another(up)) return false
    attemptFailed(this.s, up, status, 'status')
    this.drop(controller, up, status >= 500 ? UpstreamResult.STATUS_5XX : UpstreamResult.OK, `status ${status}`)
    return true
  }

  /**
   * The attempt failed (before or after its response started). Returns true when the error is not this request's
   * to report: another attempt has taken over, or it belongs to an attempt already dropped.
   */
  upstreamFailed(controller: DispatchController | undefined, err: Error): boolean {
    // a dropped attempt's own abort, or anything else it still reports: not this request's error any more
    if (controller != null && controller !== this.controller) return true
    this.releaseTarget()
    const s = this.s
    const up = s.upstream!
    if (s.aborted || s.finished) {
      if (up.breaker !== null) up.breaker.release(this.trial)
      this.trial = false
      return false
    }
    // the response had started: its outcome was recorded then, and bytes may already be with the client
    if (s.status !== 0) return false
    const f = failureOf(upstreamErrorCode(err), (err as { code?: string }).code)
    if (up.breaker !== null) this.record(up, up.breaker, true)
    this.targetFailed(up)
    if (!up.retry.onFailure(f) || !this.another(up, f !== Failure.CONNECT)) return false
    attemptFailed(s, up, 0, upstreamErrorCode(err))
    this.drop(null, up, RESULT_OF[f], err.message)
    return true
  }

  /**
   * Whether a failed attempt on `up` may be followed by another: body re-sendable, and a retry left within the
   * retry budget (sets `retryNext`) or a fallback. `delivered` false: the attempt never reached the upstream (its
   * connection was refused or not established) — its retry costs the upstream nothing, so the budget, which keeps
   * retries from multiplying a failing upstream's load, does not count it; a killed target's requests all go elsewhere.
   */
  another(up: Upstream, delivered = true): boolean {
    const s = this.s
    if (s.aborted || s.finished || !this.resendable()) return false
    this.retryNext = this.tries <= up.retry.attempts && (!delivered || this.budget(up))
    return this.retryNext || (up.fallback !== '' && s.plan.upstreams.has(up.fallback)) ||
      (s.modelCall !== null && s.modelCall.hasNext())
  }

  /** The retry budget lets this request retry on `up` (a request counts once, from its first retry on). */
  budget(up: Upstream): boolean {
    const s = this.s
    if (s.retrying) return true
    // the budget is kept on the upstream chosen for the request, whose requests are the ones counted in flight
    const home = s.gateUpstream!
    if (up !== home) return true
    if (!retryAllowed(home, up.retry.budget, up.retry.minRetries)) {
      ctx.logger.debug({ msg: 'retry refused by the retry budget', upstream: up.name, req_id: s.requestId })
      return false
    }
    s.retrying = true
    home.balancer.table.startRetrying(home.balancer.account)
    return true
  }

  /**
   * The body can be sent again: read whole (LLM routes), or none at all. A body streamed through went to the
   * upstream as it arrived from the client and is not kept anywhere.
   */
  resendable(): boolean {
    return this.s.body !== null || !hasBody(this.s)
  }

  /** Give the failed attempt up (its response, if any, is aborted unread) and schedule the next one. */
  drop(controller: DispatchController | null, up: Upstream, result: UpstreamResult, reason: string): void {
    const s = this.s
    // this attempt is counted here; the one that ends the request is counted by the account stage
    metrics.upstreamAttempt(metrics.upstreamSlot(up.name), result)
    s.errorDetail = `attempt ${this.attempts} (${up.name}) failed: ${reason}`
    s.status = 0
    // cleared before the abort: undici reports it back through upstreamFailed at once, which must see it as stale
    this.controller = null
    s.controller = null
    this.releaseTarget()
    if (controller !== null) controller.abort(DROPPED)
    if (this.again === null) this.again = () => this.next()
    if (this.retryNext) {
      this.avoid = s.target
      setTimeout(this.again, up.retry.backoff(this.tries))
    } else if (up.fallback === '' || !s.plan.upstreams.has(up.fallback)) {
      // the next model of a models route's list: the request is rebuilt (and translated) for it
      if (!s.modelCall!.next(s, untranslatable)) return
      this.tries = 0
      setImmediate(this.again)
    } else {
      this.switchTo(s.plan.upstreams.get(up.fallback)!)
      // not from inside undici's callback: the next dispatch starts on a clean stack
      setImmediate(this.again)
    }
  }

  next(): void {
    const s = this.s
    // the client went away while we waited: the account stage has already run
    if (s.finished || s.aborted) return
    this.go()
  }

  /** Move the request to another upstream: its own target choice and base path; the access line names it. */
  switchTo(next: Upstream): void {
    const s = this.s
    const rel = s.upstreamPath.slice(s.upstream!.targets[s.target].basePath.length)
    s.upstream = next
    s.target = next.pick()
    s.upstreamPath = next.targets[s.target].basePath + rel
    this.tries = 0
    this.avoid = -1
  }

  record(up: Upstream, b: Breaker, failed: boolean): void {
    const now = performance.now()
    const trial = this.trial
    this.trial = false
    const t = b.record(now, failed, trial)
    if (t === Transition.NONE) return
    if (t === Transition.OPENED) {
      metrics.breaker(up.name, true)
      if (trial) ctx.logger.warn({ msg: 'breaker open', upstream: up.name, trial: 'failed', cooldown_ms: b.cooldownMs })
      else ctx.logger.warn({ msg: 'breaker open', upstream: up.name, requests: b.requests, failures: b.failures, cooldown_ms: b.cooldownMs })
    } else {
      metrics.breaker(up.name, false)
      ctx.logger.info({ msg: 'breaker closed', upstream: up.name, open_ms: Math.round(now - b.openedAt) })
    }
  }
}
