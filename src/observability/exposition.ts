// The metric set, as prom-client metrics whose collect() callbacks read the shared buffer at scrape time. Names
// follow Prometheus conventions (leaky_ prefix, base units, _total/_seconds/_bytes); every label value comes from
// config (route paths, upstream, limit names, key ids marked metrics_label) or from a closed set (method, status
// class, kind, result) — never a raw key, a full path or a client address. Model names are normalised and capped.
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client'
import type { MetricsReader } from './reader.js'
import {
  DURATION_BUCKETS, FLOW, GAUGE, HIST_CELLS, LIMIT_RESULTS, METHODS, RATIO_BUCKETS, RATIO_HIST_CELLS, STATUS_CLASSES,
  STRIPE, TOKEN_KINDS, UPSTREAM_RESULTS,
} from './layout.js'
import { OTHER } from './label-table.js'

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
  uws: string
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
}

type Labels = Record<string, string>

interface HistSeries {
  labels: Labels
  counts: Float64Array
}

export function registerMetrics(registry: Registry, src: ExpositionSource): void {
  const registers = [registry]
  const counter = (name: string, help: string, labelNames: string[], collect: (m: Counter<string>) => void) =>
    new Counter({ name, help, labelNames, registers, collect(this: Counter<string>) {
      this.reset()
      collect(this)
    } })
  const gauge = (name: string, help: string, labelNames: string[], collect: (m: Gauge<string>) => void) =>
    new Gauge({ name, help, labelNames, registers, collect(this: Gauge<string>) {
      this.reset()
      collect(this)
    } })
  const histogram = (name: string, help: string, labelNames: string[], buckets: readonly number[], collect: () => HistSeries[]) =>
    new Histogram({ name, help, labelNames, buckets: [...buckets], registers, collect(this: Histogram<string>) {
      fillHistogram(this, buckets, collect())
    } })

  // ---- requests ----
  counter('leaky_requests_total', 'Requests answered, by route (config path prefix), upstream, method and status class.',
    ['route', 'upstream', 'method', 'status_class'], (m) => forFlows(src, (labels, base, r) => {
      for (let mi = 0; mi < METHODS.length; mi++) {
        for (let ci = 0; ci < STATUS_CLASSES.length; ci++) {
          const n = r.counter(base + mi * STATUS_CLASSES.length + ci)
          if (n > 0) m.inc({ ...labels, method: METHODS[mi], status_class: STATUS_CLASSES[ci] }, n)
        }
      }
    }))
  counter('leaky_rate_limited_requests_total', 'Requests the proxy answered 429 because a limit denied them.',
    ['route', 'upstream'], (m) => forFlows(src, (labels, base, r) => addIf(m, labels, r.counter(base + FLOW.limited))))
  counter('leaky_request_bytes_total', 'Request body bytes received from clients.',
    ['route', 'upstream'], (m) => forFlows(src, (labels, base, r) => addIf(m, labels, r.counter(base + FLOW.bytesIn))))
  counter('leaky_response_bytes_total', 'Response body bytes sent to clients.',
    ['route', 'upstream'], (m) => forFlows(src, (labels, base, r) => addIf(m, labels, r.counter(base + FLOW.bytesOut))))
  histogram('leaky_request_duration_seconds', 'Time from request accepted to response complete.',
    ['route', 'upstream'], DURATION_BUCKETS, () => flowHistograms(src, FLOW.duration))
  histogram('leaky_time_to_first_byte_seconds', 'Time from request accepted to the upstream response headers.',
    ['route', 'upstream'], DURATION_BUCKETS, () => flowHistograms(src, FLOW.ttfb))
  gauge('leaky_requests_in_flight', 'Requests admitted and not yet finished, across all workers.', [], (m) => m.set(src.inflight()))
  counter('leaky_worker_requests_total', 'Requests answered by each worker thread.', ['worker'], (m) => {
    const r = src.reader
    if (r !== null) for (let s = 0; s < r.stripes; s++) m.inc({ worker: String(s) }, r.stripeCounter(s, STRIPE.requests))
  })

  // ---- upstreams ----
  counter('leaky_upstream_attempts_total', 'Requests sent to an upstream (each retry is an attempt).', ['upstream'],
    (m) => forUpstreams(src, (labels, slot, r) => addIf(m, labels, r.counter(STRIPE.upstreams + slot * UPSTREAM_RESULTS.length))))
  counter('leaky_upstream_errors_total', 'Failed upstream attempts by kind: connect, timeout, reset, invalid (unparsable response), 5xx.',
    ['upstream', 'kind'], (m) => forUpstreams(src, (labels, slot, r) => {
      for (let k = 1; k < UPSTREAM_RESULTS.length; k++) {
        const n = r.counter(STRIPE.upstreams + slot * UPSTREAM_RESULTS.length + k)
        if (n > 0) m.inc({ ...labels, kind: UPSTREAM_RESULTS[k] }, n)
      }
    }))
  gauge('leaky_upstream_connections', 'Upstream pool connections, open and in use (sampled every second).',
    ['upstream', 'state'], (m) => forUpstreams(src, (labels, slot, r) => {
      m.set({ ...labels, state: 'open' }, r.gauge(slot, GAUGE.open))
      m.set({ ...labels, state: 'in_use' }, r.gauge(slot, GAUGE.inUse))
    }))
  gauge('leaky_upstream_breaker_open', '1 while the circuit breaker of an upstream is open on any worker.', ['upstream'],
    (m) => forUpstreams(src, (labels, slot, r) => {
      if (r.counter(STRIPE.upstreams + slot * UPSTREAM_RESULTS.length) > 0 || r.gauge(slot, GAUGE.breaker, true) > 0) {
        m.set(labels, r.gauge(slot, GAUGE.breaker, true))
      }
    }))

  // ---- LLM ----
  counter('leaky_llm_tokens_total', 'Tokens reported by upstreams, by upstream, provider, model (normalised) and kind.',
    ['upstream', 'provider', 'model', 'kind'], (m) => forLlmPairs(src, (labels, slot, r) => {
      for (let k = 0; k < TOKEN_KINDS.length; k++) {
        const n = r.counter(STRIPE.tokens + slot * TOKEN_KINDS.length + k)
        if (n > 0) m.inc({ ...labels, kind: TOKEN_KINDS[k] }, n)
      }
    }))
  histogram('leaky_llm_estimate_ratio', 'Estimated ÷ reported tokens per request (1 = exact, < 1 = underestimate).',
    ['upstream'], RATIO_BUCKETS, () => {
      const out: HistSeries[] = []
      forUpstreams(src, (labels, slot, r) => {
        const counts = r.counters(STRIPE.estimate + slot * RATIO_HIST_CELLS, RATIO_HIST_CELLS, new Float64Array(RATIO_HIST_CELLS))
        if (sumCounts(counts) > 0) out.push({ labels, counts: scaleSum(counts, 1e-6) })
      })
      return mergeSeries(out)
    })

  // ---- limiter ----
  counter('leaky_limiter_decisions_total', 'Limit checks by limit and result.', ['limit', 'result'],
    (m) => forLimits(src, (limit, slot, r) => {
      const base = STRIPE.limits + slot * LIMIT_RESULTS.length
      const allowed = r.counter(base)
      let denied = 0
      for (let k = 1; k < LIMIT_RESULTS.length; k++) denied += r.counter(base + k)
      if (allowed > 0) m.inc({ limit, result: 'allowed' }, allowed)
      if (denied > 0) m.inc({ limit, result: 'denied' }, denied)
    }))
  counter('leaky_limiter_denied_total', 'Denials by limit and reason: rate, over_burst (larger than the burst), table_full, backend (redis).',
    ['limit', 'reason'], (m) => forLimits(src, (limit, slot, r) => {
      const base = STRIPE.limits + slot * LIMIT_RESULTS.length
      for (let k = 1; k < LIMIT_RESULTS.length; k++) {
        const n = r.counter(base + k)
        if (n > 0) m.inc({ limit, reason: LIMIT_RESULTS[k] }, n)
      }
    }))
  counter('leaky_key_requests_total', 'Requests by virtual key id (keys marked metrics_label; all others under "other").',
    ['key_id'], (m) => forKeys(src, (key_id, slot, r) => addIf(m, { key_id }, r.counter(STRIPE.keys + slot * 2))))
  counter('leaky_key_rate_limited_total', 'Requests answered 429 by virtual key id (metrics_label keys; others under "other").',
    ['key_id'], (m) => forKeys(src, (key_id, slot, r) => addIf(m, { key_id }, r.counter(STRIPE.keys + slot * 2 + 1))))

  // ---- operations ----
  counter('leaky_config_reloads_total', 'Config reloads by result.', ['result'], (m) => {
    m.inc({ result: 'success' }, src.ops.reloadsOk)
    m.inc({ result: 'failure' }, src.ops.reloadsFailed)
  })
  gauge('leaky_generation', 'Number of the generation serving traffic (grows with each upgrade or restart).', [], (m) => m.set(src.ops.generation))
  gauge('leaky_config_version', 'Config version inside this generation (1 at start, +1 per reload).', [], (m) => m.set(src.ops.configVersion))
  gauge('leaky_workers', 'Worker threads of this generation.', [], (m) => m.set(src.ops.workers))
  counter('leaky_upgrades_total', 'Zero-downtime upgrades completed since the master started.', [], (m) => m.inc(src.ops.upgrades))
  counter('leaky_worker_restarts_total', 'Worker threads that died and were replaced.', [], (m) => m.inc(src.ops.workerRestarts))
  counter('leaky_generation_restarts_total', 'Generations (child processes) that died and were restarted by the master.', [],
    (m) => m.inc(src.ops.generationRestarts))
  gauge('leaky_build_info', 'Build information; the value is always 1.', ['version', 'node', 'uws'], (m) => m.set({ ...src.build }, 1))

  collectDefaultMetrics({ register: registry })
  // prom-client names three gauges *_total, which promtool rejects (a _total suffix promises a counter); the same
  // values are exported without the suffix (nodejs_active_handles, …)
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name)
  }
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

function addIf(m: Counter<string>, labels: Labels, n: number): void {
  if (n > 0) m.inc(labels, n)
}

function forFlows(src: ExpositionSource, fn: (labels: Labels, base: number, r: MetricsReader) => void): void {
  const r = src.reader
  if (r === null) return
  const v = r.v
  for (let f = 0; f < v.flows.used; f++) {
    const p = v.flows.pair(f)
    if (p === null) continue
    fn({ route: v.routes.name(p[0]) ?? OTHER, upstream: v.upstreams.name(p[1]) ?? OTHER }, STRIPE.flows + f * FLOW.size, r)
  }
}

function forUpstreams(src: ExpositionSource, fn: (labels: Labels, slot: number, r: MetricsReader) => void): void {
  const r = src.reader
  if (r === null) return
  for (let u = 0; u < r.v.upstreams.used; u++) {
    const name = r.v.upstreams.name(u)
    if (name !== null && name !== 'none') fn({ upstream: name }, u, r)
  }
}

function forLlmPairs(src: ExpositionSource, fn: (labels: Labels, slot: number, r: MetricsReader) => void): void {
  const r = src.reader
  if (r === null) return
  const v = r.v
  for (let p = 0; p < v.llmPairs.used; p++) {
    const pair = v.llmPairs.pair(p)
    if (pair === null) continue
    const upstream = v.upstreams.name(pair[0]) ?? OTHER
    fn({ upstream, provider: src.providerOf(upstream), model: v.models.name(pair[1]) ?? OTHER }, p, r)
  }
}

function forLimits(src: ExpositionSource, fn: (limit: string, slot: number, r: MetricsReader) => void): void {
  const r = src.reader
  if (r === null) return
  for (let l = 0; l < r.v.limits.used; l++) {
    const name = r.v.limits.name(l)
    if (name !== null) fn(name, l, r)
  }
}

function forKeys(src: ExpositionSource, fn: (keyId: string, slot: number, r: MetricsReader) => void): void {
  const r = src.reader
  if (r === null) return
  for (let k = 0; k < r.v.keys.used; k++) {
    const name = r.v.keys.name(k)
    if (name !== null) fn(k === 0 ? OTHER : src.keyLabel(name), k, r)
  }
}

/** Duration/TTFB histograms of every flow, seconds, merged by label (two slots may carry the same names). */
export function flowHistograms(src: ExpositionSource, cell: number): HistSeries[] {
  const out: HistSeries[] = []
  forFlows(src, (labels, base, r) => {
    const counts = r.counters(base + cell, HIST_CELLS, new Float64Array(HIST_CELLS))
    if (sumCounts(counts) > 0) out.push({ labels, counts: scaleSum(counts, 1e-6) })
  })
  return mergeSeries(out)
}

/** observations in a histogram's cells: every bucket and +Inf, not the trailing sum */
function sumCounts(c: Float64Array): number {
  let n = 0
  for (let i = 0; i < c.length - 1; i++) n += c[i]
  return n
}

function scaleSum(c: Float64Array, k: number): Float64Array {
  c[c.length - 1] *= k
  return c
}

function mergeSeries(list: HistSeries[]): HistSeries[] {
  const by = new Map<string, HistSeries>()
  for (const s of list) {
    const key = JSON.stringify(s.labels)
    const had = by.get(key)
    if (had === undefined) by.set(key, s)
    else for (let i = 0; i < had.counts.length; i++) had.counts[i] += s.counts[i]
  }
  return [...by.values()]
}

// prom-client's Histogram only offers observe(); a scrape-time histogram sets the per-series state observe() would
// have built ({ labels, bucketValues by bound (not cumulative), sum, count } in `hashMap`, prom-client 15). The
// exposition test parses the output, so a change of that internal shape fails loudly.
function fillHistogram(h: Histogram<string>, bounds: readonly number[], series: HistSeries[]): void {
  const map: Record<string, unknown> = {}
  for (let i = 0; i < series.length; i++) {
    const { labels, counts } = series[i]
    const bucketValues: Record<number, number> = {}
    for (let b = 0; b < bounds.length; b++) bucketValues[bounds[b]] = counts[b]
    map[String(i)] = { labels, bucketValues, sum: counts[bounds.length + 1], count: sumCounts(counts) }
  }
  ;(h as unknown as { hashMap: Record<string, unknown> }).hashMap = map
}
