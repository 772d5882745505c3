// Where every metric lives in the one SharedArrayBuffer a generation's workers write and its main thread reads.
// Fixed capacities, decided here once: the buffer never grows, so a label nobody planned for (a new model name, a
// reload adding routes) lands in a free slot or, past the cap, in slot 0 — the "other" label — and memory and
// cardinality stay bounded whatever clients send.
//
// Three parts, in this order:
//   label tables  strings (route paths, upstream names, models, limits, key ids) interned once, read by the main
//                 thread at scrape time; workers keep a local Map from string to slot
//   pair tables   (route, upstream) and (upstream, model) combinations that have been seen, each a slot
//   stripes       one per worker thread: its counters, histogram buckets and gauges. A worker writes only its own
//                 stripe, so two threads never bounce the same cache line on the hot path; the main thread sums them.
//
// A counter is two Uint32 words (low, high): Atomics.add on the low word, a carry into the high word when it
// wraps. One atomic add per bump, exact up to 2^53, and no BigInt allocated per call (BigInt64Array would).

export const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'other'] as const
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const
/** cells of an upstream: attempts first, then one per failure kind */
export const UPSTREAM_RESULTS = ['ok', 'connect', 'timeout', 'reset', 'invalid', '5xx'] as const
export const TOKEN_KINDS = ['prompt', 'completion', 'thoughts', 'cached', 'cache_write', 'tool_prompt', 'audio'] as const
/** cells of an upstream's usage problems: unknown (encoding, invalid fields) and partial (a body that stopped decoding) */
export const USAGE_ISSUES = ['encoding', 'invalid', 'partial'] as const
/** cells of a limit: allowed first, then one per denial reason */
export const LIMIT_RESULTS = ['allowed', 'rate', 'over_burst', 'table_full', 'backend'] as const
/** cells of the Redis backend (scope: cluster limits) of one worker */
export const REDIS_CELLS = [
  'decisions_exact', 'decisions_lease', 'errors', 'timeouts', 'fallback_open', 'fallback_closed', 'fallback_local', 'lease_renewals',
] as const

/**
 * Request duration and time to first byte, in seconds: from a 0.5 ms proxy hop to a 2 min LLM stream, roughly
 * 1-2.5-5 per decade so histogram_quantile stays within ~2x anywhere in that range.
 */
export const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120,
] as const
/** estimated ÷ actual tokens of one request: 1 is exact, below 1 the estimate was short */
export const RATIO_BUCKETS = [0.25, 0.5, 0.75, 0.9, 0.95, 1, 1.05, 1.1, 1.25, 1.5, 2, 4] as const

/** µs bounds the hot path compares integers against (no float division per request) */
export const DURATION_BOUNDS_US = Int32Array.from(DURATION_BUCKETS, (s) => Math.round(s * 1e6))
/** ratio bounds in parts per million */
export const RATIO_BOUNDS_PPM = Int32Array.from(RATIO_BUCKETS, (r) => Math.round(r * 1e6))

export const CAP = {
  routes: 256,
  upstreams: 64,
  models: 64,
  limits: 128,
  /** every configured key id, for /status; only keys marked metrics_label reach /metrics */
  keys: 1024,
  flows: 256,
  llmPairs: 256,
} as const

/** bytes of one label entry: a length word, then the UTF-8 name (longer names are cut at a character boundary) */
export const LABEL_ENTRY = 128
export const LABEL_MAX_BYTES = LABEL_ENTRY - 4

export type LabelTableName = 'routes' | 'upstreams' | 'models' | 'limits' | 'keys'
export const LABEL_TABLES: readonly LabelTableName[] = ['routes', 'upstreams', 'models', 'limits', 'keys']

// ---- one stripe, in counters (2 words each) unless said otherwise ----

/** histogram: one counter per bound, one for +Inf, one for the sum (µs or ppm) */
export const HIST_CELLS = DURATION_BUCKETS.length + 2
export const RATIO_HIST_CELLS = RATIO_BUCKETS.length + 2

/** a flow is one (route, upstream) pair: requests by method × status class, then the rest */
export const FLOW = {
  requests: 0,
  limited: METHODS.length * STATUS_CLASSES.length,
  bytesIn: METHODS.length * STATUS_CLASSES.length + 1,
  bytesOut: METHODS.length * STATUS_CLASSES.length + 2,
  duration: METHODS.length * STATUS_CLASSES.length + 3,
  ttfb: METHODS.length * STATUS_CLASSES.length + 3 + HIST_CELLS,
  size: METHODS.length * STATUS_CLASSES.length + 3 + 2 * HIST_CELLS,
} as const

/** counter offsets of each section inside a stripe */
export const STRIPE = (() => {
  let at = 0
  const take = (n: number) => {
    const o = at
    at += n
    return o
  }
  const requests = take(1)
  const flows = take(CAP.flows * FLOW.size)
  const upstreams = take(CAP.upstreams * UPSTREAM_RESULTS.length)
  const estimate = take(CAP.upstreams * RATIO_HIST_CELLS)
  const tokens = take(CAP.llmPairs * TOKEN_KINDS.length)
  const limits = take(CAP.limits * LIMIT_RESULTS.length)
  const keys = take(CAP.keys * 2)
  const redis = take(REDIS_CELLS.length)
  const usageIssues = take(CAP.upstreams * USAGE_ISSUES.length)
  /** nano-USD per (upstream, model) pair, per key, and responses whose cost is unknown per model */
  const cost = take(CAP.llmPairs)
  const keyCost = take(CAP.keys)
  const costUnknown = take(CAP.models)
  const counters = at
  return { requests, flows, upstreams, estimate, tokens, limits, keys, redis, usageIssues, cost, keyCost, costUnknown, counters }
})()

/** gauge words (Int32, stored not added) after the counters: per upstream open / in-use connections, breaker open */
export const GAUGE = { open: 0, inUse: 1, breaker: 2, size: 3 } as const
/** one gauge word after the upstream gauges: this worker's Redis connection (RedisState) */
export const REDIS_GAUGE = STRIPE.counters * 2 + CAP.upstreams * GAUGE.size
export const RedisState = { NONE: 0, UP: 1, DOWN: 2 } as const
export const STRIPE_WORDS = REDIS_GAUGE + 1

// ---- the whole buffer, in 32-bit words ----

export interface Layout {
  stripes: number
  /** word offset of each label table's `next` counter; its entries follow, LABEL_ENTRY bytes each */
  labels: Record<LabelTableName, number>
  /** word offset of the flow table: `next`, then one descriptor word per flow ((route << 16 | upstream) + 1) */
  flows: number
  llmPairs: number
  /** word offset of stripe 0 */
  stripe0: number
  words: number
}

export function layout(stripes: number): Layout {
  let at = 0
  const labels = {} as Record<LabelTableName, number>
  for (const t of LABEL_TABLES) {
    labels[t] = at
    at += 1 + (CAP[t] * LABEL_ENTRY) / 4
  }
  const flows = at
  at += 1 + CAP.flows
  const llmPairs = at
  at += 1 + CAP.llmPairs
  // stripes start on a 64-byte boundary so two workers' stripes never share a cache line
  at = Math.ceil(at / 16) * 16
  const stripe0 = at
  const stripeWords = Math.ceil(STRIPE_WORDS / 16) * 16
  at += stripes * stripeWords
  return { stripes, labels, flows, llmPairs, stripe0, words: at }
}

export function stripeWords(): number {
  return Math.ceil(STRIPE_WORDS / 16) * 16
}

/** The status class cell for an HTTP status (0 and anything outside 100-599 is "other"). */
export function statusClass(status: number): number {
  return status >= 100 && status < 600 ? ((status / 100) | 0) - 1 : 5
}

/** The method cell; any method outside the common set counts as "other" (never a raw client string). */
export function methodIndex(m: string): number {
  switch (m) {
    case 'GET': return 0
    case 'POST': return 1
    case 'PUT': return 2
    case 'PATCH': return 3
    case 'DELETE': return 4
    case 'HEAD': return 5
    case 'OPTIONS': return 6
    default: return 7
  }
}
