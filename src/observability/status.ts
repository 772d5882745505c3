// The data behind /status: once a second the main thread totals a few counters from the shared buffer into a ring
// of the last five minutes, and /status.json turns consecutive samples into rates — req/s, p50/p99 latency, 429s,
// tokens/min per provider and model, upstream health, the most limited keys. The page (src/admin/status-page.ts)
// only draws what it gets; a page opened late still shows the last five minutes, and so does one reloaded after an
// upgrade: the ring goes to the next generation with the buckets (history.ts), which continues it.
import type { MetricsReader } from './reader.js'
import {
  CAP, DURATION_BUCKETS, FLOW, GAUGE, HIST_CELLS, STRIPE, TOKEN_KINDS, UPSTREAM_RESULTS,
} from './layout.js'
import { OTHER } from './label-table.js'
import { RedisCell } from './metrics.js'
import { column, HISTORY_VERSION, isHistory, valueAt, type Column, type HistoryCarrier, type StatusHistory } from './history.js'

const RING = 300
/** how many (provider, model) lines the tokens chart gets; the rest are summed into "other" */
const TOP_MODELS = 6
const TOKEN_WINDOW = 10
/**
 * A sample this close to the previous one is skipped (seconds): a rate over a sliver of a second is noise, and two
 * points would share a rounded second on the chart. Only a hand-over brings samples this close together.
 */
const MIN_GAP_S = 0.5

interface Sample {
  t: number
  requests: number
  limited: number
  duration: Float64Array
  /** prompt + completion + thoughts per llm pair (cached is part of prompt) */
  tokens: Float64Array
  /** per upstream: attempts, failures */
  upstreams: Float64Array
  /** per key slot: limited */
  keysLimited: Float64Array
  keysRequests: Float64Array
}

export interface StatusContext {
  reader: MetricsReader | null
  inflight(): number
  providerOf(upstream: string): string
  upstreamNames(): string[]
  info(): Record<string, unknown>
}

export class StatusSampler implements HistoryCarrier {
  readonly #ctx: StatusContext
  #ring: Sample[] = []
  /** index of the newest sample; the ring fills to RING then wraps */
  #head = -1
  #timer: NodeJS.Timeout | null = null
  readonly #live = newSample()
  /** the previous generation's last totals, in this generation's slots: added to every reading once inherited */
  #base: Sample | null = null

  constructor(ctx: StatusContext) {
    this.#ctx = ctx
  }

  start(everyMs = 1000): void {
    if (this.#timer !== null || this.#ctx.reader === null) return
    this.sample()
    this.#timer = setInterval(() => this.sample(), everyMs)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  /** Take one sample now (the timer calls this; tests call it to avoid waiting). */
  sample(now = Date.now()): void {
    if (this.#ctx.reader === null) return
    if (this.#head >= 0 && now / 1000 - this.#ring[this.#head].t < MIN_GAP_S) return
    const next = (this.#head + 1) % RING
    this.#ring[next] = this.#fill(this.#ring[next] ?? newSample(), now)
    this.#head = next
  }

  #fill(s: Sample, now: number): Sample {
    const r = this.#ctx.reader!
    s.t = now / 1000
    s.requests = r.counter(STRIPE.requests)
    s.limited = 0
    s.duration.fill(0)
    const v = r.v
    const hist = new Float64Array(HIST_CELLS)
    for (let f = 0; f < v.flows.used; f++) {
      const base = STRIPE.flows + f * FLOW.size
      s.limited += r.counter(base + FLOW.limited)
      r.counters(base + FLOW.duration, HIST_CELLS, hist)
      for (let i = 0; i < HIST_CELLS; i++) s.duration[i] += hist[i]
    }
    for (let p = 0; p < v.llmPairs.used; p++) {
      const b = STRIPE.tokens + p * TOKEN_KINDS.length
      s.tokens[p] = r.counter(b) + r.counter(b + 1) + r.counter(b + 2)
    }
    for (let u = 0; u < v.upstreams.used; u++) {
      const b = STRIPE.upstreams + u * UPSTREAM_RESULTS.length
      s.upstreams[u * 2] = r.counter(b)
      let failed = 0
      for (let k = 1; k < UPSTREAM_RESULTS.length; k++) failed += r.counter(b + k)
      s.upstreams[u * 2 + 1] = failed
    }
    for (let k = 0; k < v.keys.used; k++) {
      s.keysRequests[k] = r.counter(STRIPE.keys + k * 2)
      s.keysLimited[k] = r.counter(STRIPE.keys + k * 2 + 1)
    }
    if (this.#base !== null) addInto(s, this.#base)
    return s
  }

  /**
   * The ring and a reading now, by name, for the next generation (HistoryCarrier). Called with every bucket snapshot,
   * i.e. every second: it reads the ring, it does not walk every slot of every sample.
   */
  history(now = Date.now()): StatusHistory | null {
    const r = this.#ctx.reader
    if (r === null) return null
    const samples = this.#ordered()
    // the receiver takes over from this instant: the part-second since the last sample goes along
    const newest = samples.at(-1)
    if (newest === undefined || now / 1000 - newest.t >= MIN_GAP_S) samples.push(this.#fill(this.#live, now))
    const n = samples.length
    const col = (at: (s: Sample) => number): Column | null => column(n, (i) => at(samples[i]))
    const h: StatusHistory = {
      version: HISTORY_VERSION,
      t: Float64Array.from(samples, (s) => s.t),
      requests: col((s) => s.requests) ?? 0,
      limited: col((s) => s.limited) ?? 0,
      duration: [],
      tokens: [],
      upstreams: [],
      keys: [],
    }
    for (let c = 0; c < HIST_CELLS; c++) h.duration.push(col((s) => s.duration[c]) ?? 0)
    const v = r.v
    for (let p = 0; p < v.llmPairs.used; p++) {
      const total = col((s) => s.tokens[p])
      const pr = v.llmPairs.pair(p)
      if (total === null || pr === null) continue
      const upstream = v.upstreams.name(pr[0])
      const model = v.models.name(pr[1])
      if (upstream !== null && model !== null) h.tokens.push({ upstream, model, total })
    }
    for (let u = 0; u < v.upstreams.used; u++) {
      const attempts = col((s) => s.upstreams[u * 2])
      const failed = col((s) => s.upstreams[u * 2 + 1])
      const name = v.upstreams.name(u)
      if ((attempts !== null || failed !== null) && name !== null) h.upstreams.push({ name, attempts: attempts ?? 0, failed: failed ?? 0 })
    }
    for (let k = 0; k < v.keys.used; k++) {
      const requests = col((s) => s.keysRequests[k])
      const limited = col((s) => s.keysLimited[k])
      const id = v.keys.name(k)
      if ((requests !== null || limited !== null) && id !== null) h.keys.push({ id, requests: requests ?? 0, limited: limited ?? 0 })
    }
    return h
  }

  /**
   * Continue from the previous generation's history (HistoryCarrier): its samples, mapped to this generation's slots
   * by name, go before this generation's own, and its last totals are added to every reading from now on. Own samples
   * not later than the history's end were taken before this generation served: they are dropped. Once per sampler.
   */
  inherit(h: StatusHistory): boolean {
    const r = this.#ctx.reader
    if (r === null || this.#base !== null || !isHistory(h, HIST_CELLS)) return false
    const v = r.v
    const n = h.t.length
    const end = h.t[n - 1]
    const own = this.#ordered().filter((s) => s.t - end >= MIN_GAP_S)
    const pairs = h.tokens.map((e) => v.llmPairs.slot(v.upstreams.intern(e.upstream), v.models.intern(e.model)))
    const upstreams = h.upstreams.map((e) => v.upstreams.intern(e.name))
    const keys = h.keys.map((e) => v.keys.intern(e.id))
    const at = (i: number): Sample => {
      const s = newSample()
      s.t = h.t[i]
      s.requests = valueAt(h.requests, i)
      s.limited = valueAt(h.limited, i)
      for (let c = 0; c < HIST_CELLS; c++) s.duration[c] = valueAt(h.duration[c], i)
      // += : two names may share a slot here (a full label table puts both in "other")
      h.tokens.forEach((e, j) => (s.tokens[pairs[j]] += valueAt(e.total, i)))
      h.upstreams.forEach((e, j) => {
        s.upstreams[upstreams[j] * 2] += valueAt(e.attempts, i)
        s.upstreams[upstreams[j] * 2 + 1] += valueAt(e.failed, i)
      })
      h.keys.forEach((e, j) => {
        s.keysRequests[keys[j]] += valueAt(e.requests, i)
        s.keysLimited[keys[j]] += valueAt(e.limited, i)
      })
      return s
    }
    // its own object: ring samples are refilled in place when the ring wraps
    const base = at(n - 1)
    const ring: Sample[] = []
    for (let i = Math.max(0, n - (RING - own.length)); i < n; i++) ring.push(at(i))
    // their readings did not include the base yet
    for (const s of own) addInto(s, base)
    this.#ring = ring.concat(own)
    this.#head = this.#ring.length - 1
    this.#base = base
    return true
  }

  /** The samples oldest first. */
  #ordered(): Sample[] {
    const n = this.#ring.length
    if (n < RING) return this.#ring.slice(0, n)
    const out: Sample[] = []
    for (let i = 1; i <= n; i++) out.push(this.#ring[(this.#head + i) % n])
    return out
  }

  json(): Record<string, unknown> {
    const ctx = this.#ctx
    const r = ctx.reader
    const samples = this.#ordered()
    const t: number[] = []
    const rps: Array<number | null> = []
    const p50: Array<number | null> = []
    const p99: Array<number | null> = []
    const limited: Array<number | null> = []
    const delta = new Float64Array(HIST_CELLS)
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1]
      const b = samples[i]
      const dt = b.t - a.t
      if (dt <= 0) continue
      t.push(Math.round(b.t))
      const dn = b.requests - a.requests
      rps.push(round(dn / dt, 2))
      limited.push(round((b.limited - a.limited) / dt, 2))
      for (let k = 0; k < HIST_CELLS; k++) delta[k] = b.duration[k] - a.duration[k]
      p50.push(quantileMs(delta, 0.5))
      p99.push(quantileMs(delta, 0.99))
    }

    const body: Record<string, unknown> = {
      ...ctx.info(),
      metrics: r !== null,
      inflight: ctx.inflight(),
      series: { t, rps, p50_ms: p50, p99_ms: p99, limited_ps: limited },
      tokens: { t: [] as number[], lines: [] as Array<{ provider: string; model: string; per_min: Array<number | null> }> },
      models: [] as unknown[],
      upstreams: [] as unknown[],
      limited_keys: [] as unknown[],
      /** filled by the hub from the limiter's probe */
      table: null,
      redis: null,
    }
    if (r === null) return body
    const redisUp = r.redisUp()
    if (redisUp >= 0) {
      const c = (cell: number) => r.counter(STRIPE.redis + cell)
      body.redis = {
        up: redisUp === 1,
        decisions: { exact: c(RedisCell.DECISION_EXACT), lease: c(RedisCell.DECISION_LEASE) },
        errors: c(RedisCell.ERROR),
        timeouts: c(RedisCell.TIMEOUT),
        fallback: { open: c(RedisCell.FALLBACK_OPEN), closed: c(RedisCell.FALLBACK_CLOSED), local: c(RedisCell.FALLBACK_LOCAL) },
      }
    }
    // the tables are as of now (a fresh reading, not kept), against the ring's sample of a minute ago
    const last = this.#fill(this.#live, Date.now())
    if (samples.length === 0) samples.push(last)
    const v = r.v

    // tokens/min per (provider, model): the top few by volume get a line each
    const pairs: Array<{ slot: number; provider: string; model: string; total: number; perMin: number }> = []
    const minuteAgo = sampleAtOrBefore(samples, last.t - 60)
    for (let p = 0; p < v.llmPairs.used; p++) {
      const pr = v.llmPairs.pair(p)
      if (pr === null || last.tokens[p] === 0) continue
      const upstream = v.upstreams.name(pr[0]) ?? OTHER
      const span = last.t - minuteAgo.t
      pairs.push({
        slot: p, provider: ctx.providerOf(upstream), model: v.models.name(pr[1]) ?? OTHER, total: last.tokens[p],
        perMin: span > 0 ? round(((last.tokens[p] - minuteAgo.tokens[p]) * 60) / span, 0) : 0,
      })
    }
    pairs.sort((a, b) => b.total - a.total)
    body.models = pairs.map((p) => ({ provider: p.provider, model: p.model, per_min: p.perMin, total: p.total }))
    const lines = mergeByName(pairs.slice(0, TOP_MODELS))
    const rest = pairs.slice(TOP_MODELS)
    if (rest.length > 0) lines.push({ provider: OTHER, model: OTHER, slots: rest.map((p) => p.slot) })
    const tokens = body.tokens as { t: number[]; lines: Array<{ provider: string; model: string; per_min: Array<number | null> }> }
    for (const line of lines) tokens.lines.push({ provider: line.provider, model: line.model, per_min: [] })
    for (let i = 1; i < samples.length; i++) {
      const b = samples[i]
      const a = samples[Math.max(0, i - TOKEN_WINDOW)]
      const dt = b.t - a.t
      if (dt <= 0) continue
      tokens.t.push(Math.round(b.t))
      lines.forEach((line, j) => {
        let d = 0
        for (const slot of line.slots) d += b.tokens[slot] - a.tokens[slot]
        tokens.lines[j].per_min.push(round((d * 60) / dt, 0))
      })
    }

    // upstream health over the last minute
    const names = new Set(ctx.upstreamNames())
    for (let u = 0; u < v.upstreams.used; u++) {
      const name = v.upstreams.name(u)
      if (name === null || !names.has(name)) continue
      const attempts = last.upstreams[u * 2] - minuteAgo.upstreams[u * 2]
      const failed = last.upstreams[u * 2 + 1] - minuteAgo.upstreams[u * 2 + 1]
      const span = last.t - minuteAgo.t
      const breaker = r.gauge(u, GAUGE.breaker, true) > 0
      const ratio = attempts > 0 ? failed / attempts : 0
      ;(body.upstreams as unknown[]).push({
        name,
        provider: ctx.providerOf(name),
        rps: span > 0 ? round(attempts / span, 2) : 0,
        error_ratio: round(ratio, 3),
        connections_open: r.gauge(u, GAUGE.open),
        connections_in_use: r.gauge(u, GAUGE.inUse),
        breaker_open: breaker,
        health: breaker ? 'open' : attempts === 0 ? 'idle' : ratio >= 0.5 ? 'failing' : ratio >= 0.05 ? 'degraded' : 'ok',
      })
    }

    // keys most limited over the whole ring (five minutes)
    const first = samples[0] === last ? null : samples[0]
    const keys: Array<{ key_id: string; limited: number; requests: number }> = []
    for (let k = 0; k < v.keys.used; k++) {
      const name = v.keys.name(k)
      const lim = last.keysLimited[k] - (first === null ? 0 : first.keysLimited[k])
      if (name === null || lim <= 0) continue
      keys.push({ key_id: name, limited: lim, requests: last.keysRequests[k] - (first === null ? 0 : first.keysRequests[k]) })
    }
    keys.sort((a, b) => b.limited - a.limited)
    body.limited_keys = keys.slice(0, 10)
    return body
  }
}

function newSample(): Sample {
  return {
    t: 0, requests: 0, limited: 0, duration: new Float64Array(HIST_CELLS), tokens: new Float64Array(CAP.llmPairs),
    upstreams: new Float64Array(CAP.upstreams * 2), keysLimited: new Float64Array(CAP.keys), keysRequests: new Float64Array(CAP.keys),
  }
}

// s += b, counter by counter (b's time is not s's)
function addInto(s: Sample, b: Sample): void {
  s.requests += b.requests
  s.limited += b.limited
  for (let i = 0; i < HIST_CELLS; i++) s.duration[i] += b.duration[i]
  for (let i = 0; i < s.tokens.length; i++) s.tokens[i] += b.tokens[i]
  for (let i = 0; i < s.upstreams.length; i++) s.upstreams[i] += b.upstreams[i]
  for (let i = 0; i < s.keysLimited.length; i++) {
    s.keysLimited[i] += b.keysLimited[i]
    s.keysRequests[i] += b.keysRequests[i]
  }
}

function sampleAtOrBefore(samples: Sample[], t: number): Sample {
  for (let i = samples.length - 1; i >= 0; i--) if (samples[i].t <= t) return samples[i]
  return samples[0]
}

function mergeByName(pairs: Array<{ slot: number; provider: string; model: string }>): Array<{ provider: string; model: string; slots: number[] }> {
  const out: Array<{ provider: string; model: string; slots: number[] }> = []
  for (const p of pairs) {
    const had = out.find((o) => o.provider === p.provider && o.model === p.model)
    if (had) had.slots.push(p.slot)
    else out.push({ provider: p.provider, model: p.model, slots: [p.slot] })
  }
  return out
}

/**
 * The q-quantile in ms of a histogram delta (bucket counts then +Inf, sum last), interpolated linearly inside the
 * bucket as Prometheus' histogram_quantile does; null when the delta holds no observation.
 */
export function quantileMs(delta: Float64Array, q: number): number | null {
  const nb = DURATION_BUCKETS.length
  let total = 0
  for (let i = 0; i <= nb; i++) total += delta[i]
  if (total <= 0) return null
  const rank = q * total
  let seen = 0
  for (let i = 0; i <= nb; i++) {
    const c = delta[i]
    if (seen + c >= rank && c > 0) {
      if (i === nb) return DURATION_BUCKETS[nb - 1] * 1000
      const lo = i === 0 ? 0 : DURATION_BUCKETS[i - 1]
      const hi = DURATION_BUCKETS[i]
      return round((lo + ((hi - lo) * (rank - seen)) / c) * 1000, 3)
    }
    seen += c
  }
  return DURATION_BUCKETS[nb - 1] * 1000
}

function round(x: number, digits: number): number {
  const k = 10 ** digits
  return Math.round(x * k) / k
}
