// Usage anomalies: per key and per org, tokens and cost per minute against their own baseline — an exponentially
// weighted mean and mean absolute deviation of past minutes (quiet minutes count as 0, so a baseline decays when a
// key goes idle). A closed minute whose value is over `factor` × the baseline and over the absolute minimum
// (`min_tokens`, `min_cost_usd` per minute) is an anomaly: one warn line and leaky_usage_anomalies_total per
// episode (a subject over the line minute after minute is one event until it comes back under). A subject is
// judged only after `warmup` of history, so the first traffic of a new key is not an anomaly.
// It runs on the generation's main thread off the worker batches the ledger writer merges (writer.ts): nothing on a
// request's path. The baseline is in memory: a restart starts a new warm-up (per-hour-of-day baselines: not built).
import type { Config } from '../config/index.js'
import type { Logger } from '../observability/logger.js'
import type { LedgerRow } from './row.js'

type Section = Config['ledger']['anomaly']

/** subjects followed at most (keys and orgs seen); beyond, new ones are not judged until old ones are forgotten */
const MAX_SUBJECTS = 100_000
/** a subject idle this many minutes with a baseline near zero is forgotten */
const FORGET_MINUTES = 24 * 60

export const ANOMALY_SUBJECTS = ['key', 'org'] as const
export const ANOMALY_METRICS = ['tokens', 'cost'] as const

interface Baseline {
  /** EWMA of tokens per minute, and of the absolute deviation from it */
  tokens: number
  tokensDev: number
  /** the same for micro-USD per minute */
  cost: number
  costDev: number
  /** minutes judged so far */
  minutes: number
  /** the last minute with traffic */
  lastSeen: number
  /** over the line in the last judged minute (tokens, cost): one event per episode */
  hotTokens: boolean
  hotCost: boolean
}

export interface Anomaly {
  subject: 'key' | 'org'
  id: string
  metric: 'tokens' | 'cost'
  minute: number
  value: number
  baseline: number
}

export class AnomalyDetector {
  /** events by subject and metric, for /metrics */
  readonly counts = new Map<string, number>()
  readonly #logger: Logger
  #cfg: Section
  /** per-minute sums not judged yet: minute → subject key ("key\0id") → [tokens, micro-USD] */
  readonly #open = new Map<number, Map<string, [number, number]>>()
  readonly #base = new Map<string, Baseline>()
  /** the last minute judged */
  #judged = -1

  constructor(cfg: Section, logger: Logger) {
    this.#cfg = cfg
    this.#logger = logger
    for (const s of ANOMALY_SUBJECTS) for (const m of ANOMALY_METRICS) this.counts.set(`${s}\0${m}`, 0)
  }

  configure(cfg: Section): void {
    this.#cfg = cfg
  }

  /** A worker batch's rows (each counted once per key and once per org). */
  observe(rows: LedgerRow[]): void {
    if (!this.#cfg.enabled) return
    for (const r of rows) {
      if (r[0] <= this.#judged) continue // late rows of a judged minute: too late for it, not worth a wrong minute
      let m = this.#open.get(r[0])
      if (m === undefined) {
        m = new Map()
        this.#open.set(r[0], m)
      }
      if (r[1] !== '') add(m, `key\0${r[1]}`, r[11], r[12])
      if (r[2] !== '') add(m, `org\0${r[2]}`, r[11], r[12])
    }
  }

  /** Judge every minute before `minute` (call once a minute has closed and its rows have arrived). */
  judge(minute: number): Anomaly[] {
    const out: Anomaly[] = []
    if (!this.#cfg.enabled) return out
    const minutes = [...this.#open.keys()].filter((m) => m < minute).sort((a, b) => a - b)
    // quiet minutes between the last judged one and now count as 0 for everyone: judged in one step each
    for (const m of minutes) {
      if (this.#judged >= 0) for (let q = this.#judged + 1; q < m && q < this.#judged + 60; q++) this.#minute(q, new Map(), out)
      this.#minute(m, this.#open.get(m)!, out)
      this.#open.delete(m)
    }
    if (minutes.length === 0 && this.#judged >= 0 && this.#judged < minute - 1) this.#minute(minute - 1, new Map(), out)
    return out
  }

  #minute(m: number, sums: Map<string, [number, number]>, out: Anomaly[]): void {
    const c = this.#cfg
    const alpha = 1 - Math.pow(0.5, 1 / Math.max(1, c.half_life / 60_000))
    const warm = Math.ceil(c.warmup / 60_000)
    for (const [k, v] of sums) {
      if (!this.#base.has(k) && this.#base.size < MAX_SUBJECTS) {
        // the first minute seeds the baseline: from 0 the mean would take several half-lives to reach a steady rate
        this.#base.set(k, { tokens: v[0], tokensDev: 0, cost: v[1], costDev: 0, minutes: 0, lastSeen: m, hotTokens: false, hotCost: false })
      }
    }
    for (const [k, b] of this.#base) {
      const v = sums.get(k) ?? ZERO
      if (v !== ZERO) b.lastSeen = m
      if (b.minutes >= warm) {
        const tokensHot = over(v[0], b.tokens, b.tokensDev, c.factor, c.min_tokens)
        const costHot = over(v[1], b.cost, b.costDev, c.factor, Math.round(c.min_cost_usd * 1e6))
        if (tokensHot && !b.hotTokens) out.push(this.#event(k, 'tokens', m, v[0], b.tokens))
        if (costHot && !b.hotCost) out.push(this.#event(k, 'cost', m, v[1], b.cost))
        b.hotTokens = tokensHot
        b.hotCost = costHot
      }
      b.tokensDev += alpha * (Math.abs(v[0] - b.tokens) - b.tokensDev)
      b.tokens += alpha * (v[0] - b.tokens)
      b.costDev += alpha * (Math.abs(v[1] - b.cost) - b.costDev)
      b.cost += alpha * (v[1] - b.cost)
      b.minutes++
      if (m - b.lastSeen > FORGET_MINUTES && b.tokens < 1 && b.cost < 1) this.#base.delete(k)
    }
    this.#judged = m
  }

  #event(k: string, metric: 'tokens' | 'cost', minute: number, value: number, baseline: number): Anomaly {
    const i = k.indexOf('\0')
    const a: Anomaly = { subject: k.slice(0, i) as 'key' | 'org', id: k.slice(i + 1), metric, minute, value, baseline }
    const ck = `${a.subject}\0${metric}`
    this.counts.set(ck, (this.counts.get(ck) ?? 0) + 1)
    const usd = (micro: number) => (micro / 1e6).toFixed(6)
    this.#logger.warn({
      msg: 'usage anomaly',
      subject: a.subject,
      id: a.id,
      metric,
      minute: new Date(minute * 60_000).toISOString(),
      value: metric === 'cost' ? usd(value) : value,
      baseline: metric === 'cost' ? usd(baseline) : Math.round(baseline),
      factor: this.#cfg.factor,
    })
    return a
  }
}

const ZERO: [number, number] = [0, 0]

function add(m: Map<string, [number, number]>, k: string, tokens: number, micro: number): void {
  const v = m.get(k)
  if (v === undefined) m.set(k, [tokens, micro])
  else {
    v[0] += tokens
    v[1] += micro
  }
}

/** Over `factor` × the baseline (mean plus its usual deviation) and over the absolute minimum. */
function over(value: number, mean: number, dev: number, factor: number, min: number): boolean {
  return value >= min && value > factor * (mean + dev)
}
