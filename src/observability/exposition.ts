// The metric set, as prom-client metrics whose collect() callbacks read the shared buffer at scrape time. Names
// follow Prometheus conventions (leaky_ prefix, base units, _total/_seconds/_bytes); every label value comes from
// config (route paths, upstream, limit names, key ids marked metrics_label) or from a closed set (method, status
// class, kind, result) — never a raw key, a full path or a client address. Model names are normalised and capped.
//
// Each buffer-backed metric is written once, as a walk that emits (label fragment, labels, value). prom-client's
// collect() uses the labels (getMetricsAsJSON, get()); the text exposition uses the fragment — label pairs
// rendered and escaped once per slot and cached — because prom-client's generic formatter builds and escapes every
// label of every line on every scrape, which with 1,000 request series and their histograms took most of a 50 ms
// scrape budget (test/fixtures/observability/overhead.mjs measures it).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import type { MetricsReader } from './reader.js'
import {
  DURATION_BUCKETS, FLOW, GAUGE, HIST_CELLS, LIMIT_RESULTS, METHODS, RATIO_BUCKETS, RATIO_HIST_CELLS, STATUS_CLASSES,
  STRIPE, TOKEN_KINDS, UPSTREAM_RESULTS, USAGE_ISSUES,
} from './layout.js'
import { OTHER } from './label-table.js'
import { RedisCell } from './metrics.js'

export interface Ops {
  generation: number
  configVersion: number
  workers: number
  reloadsOk: number
  reloadsFailed: number
  upgrades: number
  workerRestarts: number
  /** generations that died and were restarted by the master */
  generationRestarts: number
}

/** What the limiter can report from the main thread (wired with hub.setLimiterProbe; see tableProbe). */
export interface LimiterProbe {
  /** the shared bucket table: slots holding a level, capacity, and its own event counters */
  table(): TableReport | null
  /** per limit name, how full its fullest bucket is (0 = empty, 1 = a request would be denied) */
  fill?(): Iterable<[string, number]>
  /** the bucket table read: its snapshots carry the status history (history.ts) */
  readonly subject?: object
}

export interface TableReport {
  used: number
  capacity: number
  /** live buckets dropped by evict_idle to make room */
  evicted: number
  /** new subjects refused because the table was full (deny_new) */
  full: number
}

export interface BuildInfo {
  version: string
  node: string
  /** uWS version of the build loaded (chosen by Node ABI, see server/uws-choice.ts) */
  uws: string
  uws_package: string
  glibc: string
}

export interface ExpositionSource {
  readonly reader: MetricsReader | null
  readonly ops: Ops
  readonly build: BuildInfo
  readonly limiter: LimiterProbe | null
  inflight(): number
  providerOf(upstream: string): string
  /** the key_id label for a key: its id when marked metrics_label (within the cap), else "other" */
  keyLabel(id: string): string
  /** upstreams whose certificate is not verified (tls.insecure_skip_verify) */
  insecureUpstreams?(): readonly string[]
}

type Labels = Record<string, string>
/** one sample: its label pairs rendered (`a="x",b="y"`, '' for none), the same as an object, and the value */
type Emit = (frag: string, labels: Labels, value: number) => void
type EmitHist = (frag: string, labels: Labels, counts: Float64Array) => void

/** A metric whose text the registry takes from render() instead of formatting prom-client's values. */
interface Rendered {
  render(): string
}

/** prom-client's Registry, with a fast path for the buffer-backed metrics (see the top of this file). */
export class SharedRegistry extends Registry {
  getMetricsAsString(metric: Metric): Promise<string> {
    const r = (metric as unknown as Partial<Rendered>).render
    if (r !== undefined) return Promise.resolve(r.call(metric))
    return (Registry.prototype as unknown as { getMetricsAsString(m: Metric): Promise<string> }).getMetricsAsString.call(this, metric)
  }
}

/** Label pairs rendered once per slot and name: `name="value"` with the exposition's escapes. */
class Fragments {
  readonly #cache = new Map<string, string>()

  pair(name: string, value: string): string {
    const k = `${name}\0${value}`
    let f = this.#cache.get(k)
    if (f === undefined) {
      f = `${name}="${value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`
      if (this.#cache.size < 100_000) this.#cache.set(k, f)
    }
    return f
  }
}

const METHOD_STATUS = METHODS.flatMap((m) => STATUS_CLASSES.map((c) => `method="${m}",status_class="${c}"`))

export function registerMetrics(registry: Registry, src: ExpositionSource): void {
  const registers = [registry]
  const frags = new Fragments()
  const join = (a: string, b: string) => (a === '' ? b : b === '' ? a : `${a},${b}`)

  const counter = (name: string, help: string, labelNames: string[], each: (emit: Emit) => void) =>
    shared(new Counter({ name, help, labelNames, registers, collect(this: Counter<string>) {
      this.reset()
      each((_f, labels, v) => this.inc(labels, v))
    } }), 'counter', help, each)
  const gauge = (name: string, help: string, labelNames: string[], each: (emit: Emit) => void) =>
    shared(new Gauge({ name, help, labelNames, registers, collect(this: Gauge<string>) {
      this.reset()
      each((_f, labels, v) => this.set(labels, v))
    } }), 'gauge', help, each)
  const histogram = (name: string, help: string, labelNames: string[], buckets: readonly number[], each: (emit: EmitHist) => void) => {
    const h = new Histogram({ name, help, labelNames, buckets: [...buckets], registers, collect(this: Histogram<string>) {
      fillHistogram(this, buckets, merged(each))
    } })
    const le = buckets.map((b) => `le="${b}"`).concat('le="+Inf"')
    ;(h as unknown as Rendered).render = () => {
      const out = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`]
      for (const { frag, counts } of merged(each)) {
        let acc = 0
        for (let i = 0; i <= buckets.length; i++) {
          acc += counts[i]
          out.push(`${name}_bucket{${join(frag, le[i])}} ${acc}`)
        }
        const braces = frag === '' ? '' : `{${frag}}`
        out.push(`${name}_sum${braces} ${counts[buckets.length + 1]}`, `${name}_count${braces} ${acc}`)
      }
      return out.join('\n')
    }
    return h
  }

  // ---- walks over the buffer ----

  /** every (route, upstream) flow with its label fragment */
  const flows = (fn: (frag: string, labels: Labels, base: number, r: MetricsReader) => void) => {
    const r = src.reader
    if (r === null) return
    const v = r.v
    for (let f = 0; f < v.flows.used; f++) {
      const p = v.flows.pair(f)
      if (p === null) continue
      const route = v.routes.name(p[0]) ?? OTHER
      const upstream = v.upstreams.name(p[1]) ?? OTHER
      fn(join(frags.pair('route', route), frags.pair('upstream', upstream)), { route, upstream }, STRIPE.flows + f * FLOW.size, r)
    }
  }
  const upstreams = (fn: (frag: string, labels: Labels, slot: number, r: MetricsReader) => void) => {
    const r = src.reader
    if (r === null) return
    for (let u = 0; u < r.v.upstreams.used; u++) {
      const name = r.v.upstreams.name(u)
      if (name !== null && name !== 'none') fn(frags.pair('upstream', name), { upstream: name }, u, r)
    }
  }
  const limits = (fn: (limit: string, slot: number, r: MetricsReader) => void) => {
    const r = src.reader
    if (r === null) return
    for (let l = 0; l < r.v.limits.used; l++) {
      const name = r.v.limits.name(l)
      if (name !== null) fn(name, l, r)
    }
  }
  /** a per-key counter (its word offset for slot k), summed by label (marked ids, everything else "other"), × scale */
  const keySums = (at: (k: number) => number, emit: Emit, scale = 1) => {
    const r = src.reader
    if (r === null) return
    const by = new Map<string, number>()
    for (let k = 0; k < r.v.keys.used; k++) {
      const name = r.v.keys.name(k)
      if (name === null) continue
      const label = k === 0 ? OTHER : src.keyLabel(name)
      by.set(label, (by.get(label) ?? 0) + r.counter(at(k)))
    }
    for (const [key_id, n] of by) if (n > 0) emit(frags.pair('key_id', key_id), { key_id }, n * scale)
  }
  const keys = (cell: number, emit: Emit) => keySums((k) => STRIPE.keys + k * 2 + cell, emit)
  const flowCell = (cell: number) => (emit: Emit) => flows((frag, labels, base, r) => {
    const n = r.counter(base + cell)
    if (n > 0) emit(frag, labels, n)
  })
  const flowHist = (cell: number) => (emit: EmitHist) => flows((frag, labels, base, r) => {
    const counts = r.counters(base + cell, HIST_CELLS, new Float64Array(HIST_CELLS))
    if (observations(counts) > 0) emit(frag, labels, scaleSum(counts, 1e6))
  })

  // ---- requests ----
  counter('leaky_requests_total', 'Requests answered, by route (config path prefix), upstream, method and status class.',
    ['route', 'upstream', 'method', 'status_class'], (emit) => flows((frag, labels, base, r) => {
      for (let i = 0; i < METHOD_STATUS.length; i++) {
        const n = r.counter(base + i)
        if (n > 0) {
          const mi = (i / STATUS_CLASSES.length) | 0
          emit(`${frag},${METHOD_STATUS[i]}`, { ...labels, method: METHODS[mi], status_class: STATUS_CLASSES[i - mi * STATUS_CLASSES.length] }, n)
        }
      }
    }))
  counter('leaky_rate_limited_requests_total', 'Requests the proxy answered 429 because a limit denied them.',
    ['route', 'upstream'], flowCell(FLOW.limited))
  counter('leaky_request_bytes_total', 'Request body bytes received from clients.', ['route', 'upstream'], flowCell(FLOW.bytesIn))
  counter('leaky_response_bytes_total', 'Response body bytes sent to clients.', ['route', 'upstream'], flowCell(FLOW.bytesOut))
  histogram('leaky_request_duration_seconds', 'Time from request accepted to response complete.',
    ['route', 'upstream'], DURATION_BUCKETS, flowHist(FLOW.duration))
  histogram('leaky_time_to_first_byte_seconds', 'Time from request accepted to the upstream response headers.',
    ['route', 'upstream'], DURATION_BUCKETS, flowHist(FLOW.ttfb))
  gauge('leaky_requests_in_flight', 'Requests admitted and not yet finished, across all workers.', [], (emit) => emit('', {}, src.inflight()))
  counter('leaky_worker_requests_total', 'Requests answered by each worker thread.', ['worker'], (emit) => {
    const r = src.reader
    if (r !== null) for (let s = 0; s < r.stripes; s++) emit(`worker="${s}"`, { worker: String(s) }, r.stripeCounter(s, STRIPE.requests))
  })

  // ---- upstreams ----
  counter('leaky_upstream_attempts_total', 'Requests sent to an upstream (each retry is an attempt).', ['upstream'],
    (emit) => upstreams((frag, labels, slot, r) => {
      const n = r.counter(STRIPE.upstreams + slot * UPSTREAM_RESULTS.length)
      if (n > 0) emit(frag, labels, n)
    }))
  counter('leaky_upstream_errors_total', 'Failed upstream attempts by kind: connect, timeout, reset, invalid (unparsable response), 5xx.',
    ['upstream', 'kind'], (emit) => upstreams((frag, labels, slot, r) => {
      for (let k = 1; k < UPSTREAM_RESULTS.length; k++) {
        const n = r.counter(STRIPE.upstreams + slot * UPSTREAM_RESULTS.length + k)
        if (n > 0) emit(`${frag},kind="${UPSTREAM_RESULTS[k]}"`, { ...labels, kind: UPSTREAM_RESULTS[k] }, n)
      }
    }))
  gauge('leaky_upstream_connections', 'Upstream pool connections, open and in use (sampled every second).',
    ['upstream', 'state'], (emit) => upstreams((frag, labels, slot, r) => {
      emit(`${frag},state="open"`, { ...labels, state: 'open' }, r.gauge(slot, GAUGE.open))
      emit(`${frag},state="in_use"`, { ...labels, state: 'in_use' }, r.gauge(slot, GAUGE.inUse))
    }))
  gauge('leaky_upstream_breaker_open', '1 while the circuit breaker of an upstream is open on any worker.', ['upstream'],
    (emit) => upstreams((frag, labels, slot, r) => emit(frag, labels, r.gauge(slot, GAUGE.breaker, true))))

  // ---- LLM ----
  counter('leaky_llm_tokens_total', 'Tokens reported by upstreams, by upstream, provider, model (normalised) and kind.',
    ['upstream', 'provider', 'model', 'kind'], (emit) => {
      const r = src.reader
      if (r === null) return
      const v = r.v
      for (let p = 0; p < v.llmPairs.used; p++) {
        const pair = v.llmPairs.pair(p)
        if (pair === null) continue
        const upstream = v.upstreams.name(pair[0]) ?? OTHER
        const provider = src.providerOf(upstream)
        const model = v.models.name(pair[1]) ?? OTHER
        const frag = `${frags.pair('upstream', upstream)},${frags.pair('provider', provider)},${frags.pair('model', model)}`
        for (let k = 0; k < TOKEN_KINDS.length; k++) {
          const n = r.counter(STRIPE.tokens + p * TOKEN_KINDS.length + k)
          if (n > 0) emit(`${frag},kind="${TOKEN_KINDS[k]}"`, { upstream, provider, model, kind: TOKEN_KINDS[k] }, n)
        }
      }
    })
  counter('leaky_llm_cost_usd_total', 'What responses cost in USD at the configured prices (shipped config/prices.yaml + the prices section), by upstream, provider and model.',
    ['upstream', 'provider', 'model'], (emit) => {
      const r = src.reader
      if (r === null) return
      const v = r.v
      for (let p = 0; p < v.llmPairs.used; p++) {
        const pair = v.llmPairs.pair(p)
        const n = r.counter(STRIPE.cost + p)
        if (pair === null || n <= 0) continue
        const upstream = v.upstreams.name(pair[0]) ?? OTHER
        const provider = src.providerOf(upstream)
        const model = v.models.name(pair[1]) ?? OTHER
        emit(`${frags.pair('upstream', upstream)},${frags.pair('provider', provider)},${frags.pair('model', model)}`, { upstream, provider, model }, n / 1e9)
      }
    })
  counter('leaky_llm_cost_unknown_total', 'Responses whose cost is unknown: their model has no price (add it under prices:), or their usage could not be read.',
    ['model'], (emit) => {
      const r = src.reader
      if (r === null) return
      for (let m = 0; m < r.v.models.used; m++) {
        const n = r.counter(STRIPE.costUnknown + m)
        const model = r.v.models.name(m)
        if (n > 0 && model !== null) emit(frags.pair('model', model), { model }, n)
      }
    })
  counter('leaky_key_cost_usd_total', 'What each key\'s responses cost in USD, for keys marked metrics_label (the rest summed as "other").',
    ['key_id'], (emit) => keySums((k) => STRIPE.keyCost + k, emit, 1e-9))
  counter('leaky_llm_usage_unknown_total', 'Responses whose usage could not be read, by reason: encoding (a Content-Encoding the proxy does not decode), invalid (usage fields of the wrong type); their estimate stays charged.',
    ['upstream', 'reason'], (emit) => upstreams((frag, labels, slot, r) => {
      for (let k = 0; k < 2; k++) {
        const n = r.counter(STRIPE.usageIssues + slot * USAGE_ISSUES.length + k)
        if (n > 0) emit(`${frag},reason="${USAGE_ISSUES[k]}"`, { ...labels, reason: USAGE_ISSUES[k] }, n)
      }
    }))
  counter('leaky_llm_usage_partial_total', 'Responses whose compressed body stopped decoding before its end (corrupt or truncated): usage counted from what decoded.',
    ['upstream'], (emit) => upstreams((frag, labels, slot, r) => {
      const n = r.counter(STRIPE.usageIssues + slot * USAGE_ISSUES.length + 2)
      if (n > 0) emit(frag, labels, n)
    }))
  histogram('leaky_llm_estimate_ratio', 'Estimated ÷ reported tokens per request (1 = exact, < 1 = underestimate).',
    ['upstream'], RATIO_BUCKETS, (emit) => upstreams((frag, labels, slot, r) => {
      const counts = r.counters(STRIPE.estimate + slot * RATIO_HIST_CELLS, RATIO_HIST_CELLS, new Float64Array(RATIO_HIST_CELLS))
      if (observations(counts) > 0) emit(frag, labels, scaleSum(counts, 1e6))
    }))

  // ---- limiter ----
  counter('leaky_limiter_decisions_total', 'Limit checks by limit and result.', ['limit', 'result'],
    (emit) => limits((limit, slot, r) => {
      const base = STRIPE.limits + slot * LIMIT_RESULTS.length
      const allowed = r.counter(base)
      let denied = 0
      for (let k = 1; k < LIMIT_RESULTS.length; k++) denied += r.counter(base + k)
      const f = frags.pair('limit', limit)
      if (allowed > 0) emit(`${f},result="allowed"`, { limit, result: 'allowed' }, allowed)
      if (denied > 0) emit(`${f},result="denied"`, { limit, result: 'denied' }, denied)
    }))
  counter('leaky_limiter_denied_total', 'Denials by limit and reason: rate, over_burst (larger than the burst), table_full, backend (redis).',
    ['limit', 'reason'], (emit) => limits((limit, slot, r) => {
      const base = STRIPE.limits + slot * LIMIT_RESULTS.length
      for (let k = 1; k < LIMIT_RESULTS.length; k++) {
        const n = r.counter(base + k)
        if (n > 0) emit(`${frags.pair('limit', limit)},reason="${LIMIT_RESULTS[k]}"`, { limit, reason: LIMIT_RESULTS[k] }, n)
      }
    }))
  // ---- Redis (scope: cluster limits); absent while no worker uses Redis ----
  const redisCells = (cells: ReadonlyArray<readonly [number, string]>, label: string) => (emit: Emit) => {
    const r = src.reader
    if (r === null || r.redisUp() < 0) return
    for (const [cell, value] of cells) emit(frags.pair(label, value), { [label]: value }, r.counter(STRIPE.redis + cell))
  }
  gauge('leaky_redis_up', '1 while every worker\'s Redis connection answers, 0 while any is down (then on_error decides).', [], (emit) => {
    const up = src.reader === null ? -1 : src.reader.redisUp()
    if (up >= 0) emit('', {}, up)
  })
  counter('leaky_redis_decisions_total', 'Cluster-limit decisions Redis made, by mode (exact: a script call; lease: from leased credit).', ['mode'],
    redisCells([[RedisCell.DECISION_EXACT, 'exact'], [RedisCell.DECISION_LEASE, 'lease']], 'mode'))
  counter('leaky_redis_errors_total', 'Redis calls that failed, by kind (timeout: slower than redis.timeout).', ['kind'],
    redisCells([[RedisCell.ERROR, 'error'], [RedisCell.TIMEOUT, 'timeout']], 'kind'))
  counter('leaky_redis_fallback_total', 'Cluster-limit decisions made without Redis, by the on_error policy that made them.', ['policy'],
    redisCells([[RedisCell.FALLBACK_OPEN, 'open'], [RedisCell.FALLBACK_CLOSED, 'closed'], [RedisCell.FALLBACK_LOCAL, 'local']], 'policy'))
  counter('leaky_redis_lease_renewals_total', 'Lease calls made (lease mode): each takes a slice of a cluster bucket into local credit.', [],
    (emit) => {
      const r = src.reader
      if (r !== null && r.redisUp() >= 0) emit('', {}, r.counter(STRIPE.redis + RedisCell.LEASE_RENEWALS))
    })
  counter('leaky_key_requests_total', 'Requests by virtual key id (keys marked metrics_label; all others under "other").',
    ['key_id'], (emit) => keys(0, emit))
  counter('leaky_key_rate_limited_total', 'Requests answered 429 by virtual key id (metrics_label keys; others under "other").',
    ['key_id'], (emit) => keys(1, emit))

  // ---- operations (main thread only: prom-client formats them) ----
  new Counter({ name: 'leaky_config_reloads_total', help: 'Config reloads by result.', labelNames: ['result'], registers,
    collect(this: Counter<string>) {
      this.reset()
      this.inc({ result: 'success' }, src.ops.reloadsOk)
      this.inc({ result: 'failure' }, src.ops.reloadsFailed)
    } })
  const value = (name: string, help: string, type: 'counter' | 'gauge', get: () => number) => {
    if (type === 'gauge') new Gauge({ name, help, registers, collect(this: Gauge) { this.set(get()) } })
    else new Counter({ name, help, registers, collect(this: Counter) {
      this.reset()
      this.inc(get())
    } })
  }
  new Gauge({ name: 'leaky_upstream_tls_insecure', help: '1 for each upstream whose TLS certificate is not verified (tls.insecure_skip_verify: true).',
    labelNames: ['upstream'], registers, collect(this: Gauge<string>) {
      this.reset()
      for (const name of src.insecureUpstreams?.() ?? []) this.set({ upstream: name }, 1)
    } })
  value('leaky_generation', 'Number of the generation serving traffic (grows with each upgrade or restart).', 'gauge', () => src.ops.generation)
  value('leaky_config_version', 'Config version inside this generation (1 at start, +1 per reload).', 'gauge', () => src.ops.configVersion)
  value('leaky_workers', 'Worker threads of this generation.', 'gauge', () => src.ops.workers)
  value('leaky_upgrades_total', 'Zero-downtime upgrades completed since the master started.', 'counter', () => src.ops.upgrades)
  value('leaky_worker_restarts_total', 'Worker threads that died and were replaced.', 'counter', () => src.ops.workerRestarts)
  value('leaky_generation_restarts_total', 'Generations (child processes) that died and were restarted by the master.', 'counter',
    () => src.ops.generationRestarts)
  new Gauge({ name: 'leaky_build_info', help: 'Build information; the value is always 1.', labelNames: ['version', 'node', 'uws', 'uws_package', 'glibc'], registers,
    collect(this: Gauge<string>) {
      this.set({ ...src.build }, 1)
    } })

  collectDefaultMetrics({ register: registry })
  // prom-client names three gauges *_total, which promtool rejects (a _total suffix promises a counter); the same
  // values are exported without the suffix (nodejs_active_handles, …)
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name)
  }
}

/** Give a counter or gauge its fast text rendering from the same walk its collect() uses. */
function shared<M extends Counter<string> | Gauge<string>>(m: M, type: 'counter' | 'gauge', help: string, each: (emit: Emit) => void): M {
  const name = (m as unknown as { name: string }).name
  ;(m as unknown as Rendered).render = () => {
    const out = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`]
    const by = new Map<string, number>()
    each((frag, _labels, v) => by.set(frag, (by.get(frag) ?? 0) + v))
    for (const [frag, v] of by) out.push(frag === '' ? `${name} ${v}` : `${name}{${frag}} ${v}`)
    return out.join('\n')
  }
  return m
}

/**
 * The bucket table's metrics, registered once a limiter probe exists: a generation without one reports nothing
 * rather than a capacity of 0.
 */
export function registerLimiterMetrics(registry: Registry, src: ExpositionSource): void {
  const registers = [registry]
  const table = () => src.limiter?.table() ?? null
  new Counter({ name: 'leaky_limiter_table_events_total', help: 'Bucket table events: evicted (live bucket dropped by evict_idle), full (new subject refused by deny_new).',
    labelNames: ['event'], registers, collect(this: Counter<string>) {
      this.reset()
      const t = table()
      if (t === null) return
      this.inc({ event: 'evicted' }, t.evicted)
      this.inc({ event: 'full' }, t.full)
    } })
  new Gauge({ name: 'leaky_limiter_table_used_slots', help: 'Bucket table slots holding a level.', registers, collect(this: Gauge) {
    this.set(table()?.used ?? 0)
  } })
  new Gauge({ name: 'leaky_limiter_table_capacity_slots', help: 'Bucket table capacity (limits_table.capacity).', registers, collect(this: Gauge) {
    this.set(table()?.capacity ?? 0)
  } })
  new Gauge({ name: 'leaky_limiter_fill_ratio', help: 'How full the fullest bucket of each limit is (1 = denying).', labelNames: ['limit'], registers,
    collect(this: Gauge<string>) {
      this.reset()
      const f = src.limiter?.fill?.()
      if (f) for (const [limit, ratio] of f) this.set({ limit }, ratio)
    } })
}

/** observations in a histogram's cells: every bucket and +Inf, not the trailing sum */
function observations(c: Float64Array): number {
  let n = 0
  for (let i = 0; i < c.length - 1; i++) n += c[i]
  return n
}

/** The trailing sum from integer µs (or ppm) to base units; division keeps 23000 µs an exact-looking 0.023. */
function scaleSum(c: Float64Array, per: number): Float64Array {
  c[c.length - 1] /= per
  return c
}

/** A histogram walk's series, merged by label fragment (two slots may carry the same names). */
function merged(each: (emit: EmitHist) => void): Array<{ frag: string; labels: Labels; counts: Float64Array }> {
  const by = new Map<string, { frag: string; labels: Labels; counts: Float64Array }>()
  each((frag, labels, counts) => {
    const had = by.get(frag)
    if (had === undefined) by.set(frag, { frag, labels, counts })
    else for (let i = 0; i < had.counts.length; i++) had.counts[i] += counts[i]
  })
  return [...by.values()]
}

// prom-client's Histogram only offers observe(); for getMetricsAsJSON a scrape-time histogram sets the per-series
// state observe() would have built ({ labels, bucketValues by bound (not cumulative), sum, count } in `hashMap`,
// prom-client 15). The text exposition does not go through it (render above).
function fillHistogram(h: Histogram<string>, bounds: readonly number[], series: Array<{ labels: Labels; counts: Float64Array }>): void {
  const map: Record<string, unknown> = {}
  for (let i = 0; i < series.length; i++) {
    const { labels, counts } = series[i]
    const bucketValues: Record<number, number> = {}
    for (let b = 0; b < bounds.length; b++) bucketValues[bounds[b]] = counts[b]
    map[String(i)] = { labels, bucketValues, sum: counts[bounds.length + 1], count: observations(counts) }
  }
  ;(h as unknown as { hashMap: Record<string, unknown> }).hashMap = map
}
