// The worker-side metrics API: what the hot path calls. Every call is a few Atomics.add on this worker's own stripe
// of the shared buffer — no registry, no label objects, no strings built. The generation's main thread turns the
// buffer into prom-client metrics when /metrics is scraped (hub.ts).
//
// Until attach() (and when metrics are off) `enabled` is false and every method returns at once: one branch, so
// a stage may call it unconditionally.
import { openMetrics, type MetricsViews } from './buffer.js'
import {
  CAP, DURATION_BOUNDS_US, FLOW, GAUGE, LIMIT_RESULTS, RATIO_BOUNDS_PPM, RATIO_HIST_CELLS, REDIS_CELLS, REDIS_GAUGE,
  RedisState, STRIPE, TOKEN_KINDS, UPSTREAM_RESULTS, USAGE_ISSUES, methodIndex, statusClass, stripeWords,
} from './layout.js'

/** Why a limit denied a request; the cell index of leaky_limiter_denied_total{reason}. */
export const DenyReason = { RATE: 1, OVER_BURST: 2, TABLE_FULL: 3, BACKEND: 4 } as const
export type DenyReason = (typeof DenyReason)[keyof typeof DenyReason]

/** How one upstream attempt ended. */
export const UpstreamResult = { OK: 0, CONNECT: 1, TIMEOUT: 2, RESET: 3, INVALID: 4, STATUS_5XX: 5 } as const
export type UpstreamResult = (typeof UpstreamResult)[keyof typeof UpstreamResult]

/** The cells of REDIS_CELLS, by name. */
export const RedisCell = {
  DECISION_EXACT: 0, DECISION_LEASE: 1, ERROR: 2, TIMEOUT: 3, FALLBACK_OPEN: 4, FALLBACK_CLOSED: 5, FALLBACK_LOCAL: 6,
  LEASE_RENEWALS: 7,
} as const
export type RedisCell = (typeof RedisCell)[keyof typeof RedisCell]

export const TokenKind = { PROMPT: 0, COMPLETION: 1, THOUGHTS: 2, CACHED: 3, CACHE_WRITE: 4, TOOL_PROMPT: 5, AUDIO: 6 } as const
export type TokenKind = (typeof TokenKind)[keyof typeof TokenKind]

/** What account knows about a finished request (RequestState satisfies it; no import of the server here). */
export interface RequestFacts {
  readonly method: string
  readonly startMs: number
  readonly ttfbMs: number
  readonly bytesIn: number
  readonly bytesOut: number
  readonly keyId: string
  readonly errorCode: string | null
  readonly route: { readonly path: string } | null
  readonly upstream: { readonly name: string } | null
  /** non-null once the request was dispatched upstream */
  readonly controller: unknown
}

/** What the pool sampler reads from an upstream (src/upstream/upstream.ts Upstream satisfies it). */
export interface SampledUpstream {
  readonly name: string
  readonly targets: ReadonlyArray<{ readonly pool: { readonly stats: { readonly connected: number; readonly free: number } } }>
}

const MAX32 = 0xffffffff
const NONE = 'none'

// compile-time checks that the enums above match the layout's cell lists
const _cells: [typeof LIMIT_RESULTS.length, typeof UPSTREAM_RESULTS.length, typeof TOKEN_KINDS.length, typeof REDIS_CELLS.length, typeof USAGE_ISSUES.length] = [5, 6, 7, 8, 3]

/** What went wrong reading a response's usage; the cell index of USAGE_ISSUES. */
export const UsageIssue = { ENCODING: 0, INVALID: 1, PARTIAL: 2 } as const
export type UsageIssue = (typeof UsageIssue)[keyof typeof UsageIssue]
void _cells

export class WorkerMetrics {
  enabled = false
  #v: MetricsViews | null = null
  #u32: Uint32Array = new Uint32Array(0)
  #i32: Int32Array = new Int32Array(0)
  /** word offset of this worker's stripe, and of its gauge words */
  #stripe = 0
  #gauges = 0
  #noneRoute = 0
  #noneUpstream = 0
  readonly #models = new Map<string, number>()
  #sampler: NodeJS.Timeout | null = null
  readonly #scratch = new Int32Array(CAP.upstreams * 2)

  /** Bind to the generation's buffer; worker `index` writes stripe index % stripes. null: metrics off. */
  attach(sab: SharedArrayBuffer | null, index: number): void {
    if (sab === null) {
      this.enabled = false
      this.#v = null
      return
    }
    const v = openMetrics(sab)
    this.#v = v
    this.#u32 = v.u32
    this.#i32 = v.i32
    const stripes = Math.max(1, v.layout.stripes)
    this.#stripe = v.layout.stripe0 + (index % stripes) * stripeWords()
    this.#gauges = this.#stripe + STRIPE.counters * 2
    this.#noneRoute = v.routes.intern(NONE)
    this.#noneUpstream = v.upstreams.intern(NONE)
    this.enabled = true
  }

  // ---- slots: resolve once where possible (at compile time), then pass numbers on the hot path ----

  upstreamSlot(name: string): number {
    return this.#v === null ? 0 : this.#v.upstreams.intern(name)
  }

  limitSlot(name: string): number {
    return this.#v === null ? 0 : this.#v.limits.intern(name)
  }

  /** Model names come from clients and upstreams: normalised, and capped by the table (past it: "other"). */
  modelSlot(model: string): number {
    if (this.#v === null) return 0
    const hit = this.#models.get(model)
    if (hit !== undefined) return hit
    const slot = this.#v.models.intern(normalizeModel(model))
    if (this.#models.size < CAP.models * 4) this.#models.set(model, slot)
    return slot
  }

  // ---- the hot path ----

  /** One finished request (account stage): counts, status class, bytes, duration and TTFB, key, upstream attempt. */
  request(s: RequestFacts, status: number, endMs: number): void {
    if (!this.enabled) return
    const v = this.#v!
    const route = s.route === null ? this.#noneRoute : v.routes.intern(s.route.path)
    const up = s.upstream === null ? this.#noneUpstream : v.upstreams.intern(s.upstream.name)
    const flow = this.#stripe + (STRIPE.flows + v.flows.slot(route, up) * FLOW.size) * 2
    this.#inc(this.#stripe + STRIPE.requests * 2)
    this.#inc(flow + (methodIndex(s.method) * 6 + statusClass(status)) * 2)
    const limited = s.errorCode === 'LEAKY_RATE_LIMITED' || s.errorCode === 'LEAKY_OVER_BURST'
    if (limited) this.#inc(flow + FLOW.limited * 2)
    if (s.bytesIn > 0) this.#add(flow + FLOW.bytesIn * 2, s.bytesIn)
    if (s.bytesOut > 0) this.#add(flow + FLOW.bytesOut * 2, s.bytesOut)
    this.#observe(flow + FLOW.duration * 2, micros(endMs - s.startMs), DURATION_BOUNDS_US)
    if (s.ttfbMs >= 0) this.#observe(flow + FLOW.ttfb * 2, micros(s.ttfbMs), DURATION_BOUNDS_US)
    if (s.keyId !== '') {
      const k = this.#stripe + (STRIPE.keys + v.keys.intern(s.keyId) * 2) * 2
      this.#inc(k)
      if (limited) this.#inc(k + 2)
    }
    if (s.upstream !== null) {
      const r = upstreamResultOf(s.errorCode, status, s.controller !== null)
      if (r >= 0) this.upstreamAttempt(up, r as UpstreamResult)
    }
  }

  /** One attempt at an upstream (a retry is an attempt of its own). */
  upstreamAttempt(upstream: number, result: UpstreamResult): void {
    if (!this.enabled) return
    const base = this.#stripe + (STRIPE.upstreams + upstream * UPSTREAM_RESULTS.length) * 2
    this.#inc(base)
    if (result !== 0) this.#inc(base + result * 2)
  }

  /** A limit's verdict on one request. `limit` from limitSlot(name), resolved when the limit is compiled. */
  limitDecision(limit: number, allowed: boolean, reason: DenyReason = DenyReason.RATE): void {
    if (!this.enabled) return
    this.#inc(this.#stripe + (STRIPE.limits + limit * LIMIT_RESULTS.length + (allowed ? 0 : reason)) * 2)
  }

  /** `n` events of one kind of the Redis backend. */
  redis(cell: RedisCell, n = 1): void {
    if (!this.enabled || n <= 0) return
    this.#add(this.#stripe + (STRIPE.redis + cell) * 2, n)
  }

  /** This worker's Redis connection state (leaky_redis_up: 0 while any worker's is down). */
  redisState(up: boolean | null): void {
    if (!this.enabled) return
    Atomics.store(this.#i32, this.#stripe + REDIS_GAUGE, up === null ? RedisState.NONE : up ? RedisState.UP : RedisState.DOWN)
  }

  /** `n` tokens of one kind for (upstream, model) — slots from upstreamSlot / modelSlot. */
  tokens(upstream: number, model: number, kind: TokenKind, n: number): void {
    if (!this.enabled || !(n > 0)) return
    const pair = this.#v!.llmPairs.slot(upstream, model)
    this.#add(this.#stripe + (STRIPE.tokens + pair * TOKEN_KINDS.length + kind) * 2, n)
  }

  /** A whole usage report at once; a negative or zero count is "not reported" and skipped. */
  usage(upstream: string, u: { model: string, prompt: number, completion: number, thoughts: number, cached: number,
    cacheWrite: number, toolPrompt: number, audio: number }): void {
    if (!this.enabled) return
    const up = this.#v!.upstreams.intern(upstream)
    const m = this.modelSlot(u.model)
    this.tokens(up, m, TokenKind.PROMPT, u.prompt)
    this.tokens(up, m, TokenKind.COMPLETION, u.completion)
    this.tokens(up, m, TokenKind.THOUGHTS, u.thoughts)
    this.tokens(up, m, TokenKind.CACHED, u.cached)
    this.tokens(up, m, TokenKind.CACHE_WRITE, u.cacheWrite)
    this.tokens(up, m, TokenKind.TOOL_PROMPT, u.toolPrompt)
    this.tokens(up, m, TokenKind.AUDIO, u.audio)
  }

  /**
   * What one response cost (leaky_llm_cost_usd_total, and leaky_key_cost_usd_total for the key), in nano-USD; null:
   * its model has no price, or its usage could not be read (leaky_llm_cost_unknown_total).
   */
  cost(upstream: string, model: string, keyId: string, nanoUsd: number | null): void {
    if (!this.enabled) return
    const v = this.#v!
    const m = this.modelSlot(model)
    if (nanoUsd === null) {
      this.#inc(this.#stripe + (STRIPE.costUnknown + m) * 2)
      return
    }
    if (!(nanoUsd > 0)) return
    const pair = v.llmPairs.slot(v.upstreams.intern(upstream), m)
    this.#add(this.#stripe + (STRIPE.cost + pair) * 2, nanoUsd)
    if (keyId !== '') this.#add(this.#stripe + (STRIPE.keyCost + v.keys.intern(keyId)) * 2, nanoUsd)
  }

  /** A response whose usage could not be read (leaky_llm_usage_unknown_total) or only in part (…_partial_total). */
  usageIssue(upstream: string, issue: UsageIssue): void {
    if (!this.enabled) return
    const up = this.#v!.upstreams.intern(upstream)
    this.#add(this.#stripe + (STRIPE.usageIssues + up * USAGE_ISSUES.length + issue) * 2, 1)
  }

  /** How far the token estimate was from the usage the upstream reported (leaky_llm_estimate_ratio). */
  estimateError(upstream: string, estimated: number, actual: number): void {
    if (!this.enabled || !(actual > 0) || !(estimated >= 0)) return
    const u = this.#v!.upstreams.intern(upstream)
    const ppm = Math.round((estimated / actual) * 1e6)
    this.#observe(this.#stripe + (STRIPE.estimate + u * RATIO_HIST_CELLS) * 2, ppm > MAX32 ? MAX32 : ppm, RATIO_BOUNDS_PPM)
  }

  /** Breaker state of an upstream as this worker sees it (the exposition reports the max over workers). */
  breaker(upstream: string, open: boolean): void {
    if (!this.enabled) return
    Atomics.store(this.#i32, this.#gauges + this.#v!.upstreams.intern(upstream) * GAUGE.size + GAUGE.breaker, open ? 1 : 0)
  }

  /** Store this worker's pool gauges (open and in-use connections per upstream). */
  sampleUpstreams(upstreams: Iterable<SampledUpstream>): void {
    if (!this.enabled) return
    const v = this.#v!
    const acc = this.#scratch
    acc.fill(0)
    for (const u of upstreams) {
      const slot = v.upstreams.intern(u.name)
      for (const t of u.targets) {
        const st = t.pool.stats
        acc[slot * 2] += st.connected
        acc[slot * 2 + 1] += st.connected - st.free
      }
    }
    for (let i = 0; i < CAP.upstreams; i++) {
      Atomics.store(this.#i32, this.#gauges + i * GAUGE.size + GAUGE.open, acc[i * 2])
      Atomics.store(this.#i32, this.#gauges + i * GAUGE.size + GAUGE.inUse, acc[i * 2 + 1])
    }
  }

  /** Sample pool gauges every `everyMs` (unref'd: never keeps a draining worker alive). */
  startSampling(upstreams: () => Iterable<SampledUpstream>, everyMs = 1000): void {
    this.stopSampling()
    if (!this.enabled) return
    this.#sampler = setInterval(() => this.sampleUpstreams(upstreams()), everyMs)
    this.#sampler.unref()
  }

  stopSampling(): void {
    if (this.#sampler !== null) clearInterval(this.#sampler)
    this.#sampler = null
  }

  // ---- cells ----

  #inc(word: number): void {
    if (Atomics.add(this.#u32, word, 1) === MAX32) Atomics.add(this.#u32, word + 1, 1)
  }

  #add(word: number, n: number): void {
    if (n > MAX32) {
      // a single > 4 GiB addition: carry the high part first (cold)
      Atomics.add(this.#u32, word + 1, Math.floor(n / 4294967296))
      n = n % 4294967296
    }
    if (Atomics.add(this.#u32, word, n) + n > MAX32) Atomics.add(this.#u32, word + 1, 1)
  }

  /** Histogram at `word`: counter per bound, +Inf, then the sum. */
  #observe(word: number, value: number, bounds: Int32Array): void {
    const n = bounds.length
    let i = 0
    while (i < n && value > bounds[i]) i++
    this.#inc(word + i * 2)
    this.#add(word + (n + 1) * 2, value)
  }
}

function micros(ms: number): number {
  const us = Math.round(ms * 1000)
  return us < 0 ? 0 : us > MAX32 ? MAX32 : us
}

/** How the request's upstream attempt ended, or -1 when nothing was sent upstream. */
export function upstreamResultOf(errorCode: string | null, status: number, dispatched: boolean): number {
  switch (errorCode) {
    case 'LEAKY_UPSTREAM_CONNECT': return UpstreamResult.CONNECT
    case 'LEAKY_UPSTREAM_TLS': return UpstreamResult.CONNECT
    case 'LEAKY_UPSTREAM_TIMEOUT': return UpstreamResult.TIMEOUT
    case 'LEAKY_UPSTREAM_RESET': return UpstreamResult.RESET
    case 'LEAKY_UPSTREAM_INVALID': return UpstreamResult.INVALID
  }
  if (!dispatched) return -1
  return status >= 500 && status < 600 && errorCode === null ? UpstreamResult.STATUS_5XX : UpstreamResult.OK
}

const DATE_SUFFIX = /-(?:\d{4}-\d{2}-\d{2}|\d{8})$/
const UNSAFE = /[^a-z0-9._:/-]+/g

/**
 * A model name as a label value: lower case, Gemini's "models/" prefix and dated snapshot suffixes removed
 * ("gpt-4o-2024-08-06" → "gpt-4o"), anything outside [a-z0-9._:/-] replaced, at most 64 characters.
 */
export function normalizeModel(model: string): string {
  let m = model.trim().toLowerCase()
  if (m.startsWith('models/')) m = m.slice(7)
  m = m.replace(DATE_SUFFIX, '').replace(UNSAFE, '_')
  if (m.length > 64) m = m.slice(0, 64)
  return m === '' ? 'unknown' : m
}

/** The one instance of a worker thread (and of the main thread's in-process tests). */
export const metrics = new WorkerMetrics()
