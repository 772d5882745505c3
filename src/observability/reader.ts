// The main thread's view of the workers' stripes: a counter's value is the sum of that counter over every stripe.
// Reads only — workers keep writing meanwhile, and a scrape never waits for them.
import type { MetricsViews } from './buffer.js'
import { GAUGE, REDIS_GAUGE, RedisState, STRIPE, stripeWords } from './layout.js'

const TWO32 = 4294967296

export class MetricsReader {
  readonly v: MetricsViews
  readonly #u32: Uint32Array
  readonly #i32: Int32Array
  readonly #stripes: number[]

  constructor(v: MetricsViews) {
    this.v = v
    this.#u32 = v.u32
    this.#i32 = v.i32
    this.#stripes = []
    for (let s = 0; s < v.layout.stripes; s++) this.#stripes.push(v.layout.stripe0 + s * stripeWords())
  }

  get stripes(): number {
    return this.#stripes.length
  }

  /** Counter `c` (index inside a stripe) summed over all stripes. */
  counter(c: number): number {
    let total = 0
    for (let s = 0; s < this.#stripes.length; s++) total += this.#read(this.#stripes[s] + c * 2)
    return total
  }

  /** Counter `c` of one stripe. */
  stripeCounter(stripe: number, c: number): number {
    return this.#read(this.#stripes[stripe] + c * 2)
  }

  /** `n` consecutive counters from `c`, summed over stripes, into `out` (histogram buckets and sum). */
  counters(c: number, n: number, out: Float64Array): Float64Array {
    out.fill(0, 0, n)
    for (let s = 0; s < this.#stripes.length; s++) {
      const base = this.#stripes[s] + c * 2
      for (let i = 0; i < n; i++) out[i] += this.#read(base + i * 2)
    }
    return out
  }

  /** An upstream gauge: summed over workers (connections) or their max (breaker open). */
  gauge(upstream: number, g: number, max = false): number {
    let v = 0
    for (let s = 0; s < this.#stripes.length; s++) {
      const x = Atomics.load(this.#i32, this.#stripes[s] + STRIPE.counters * 2 + upstream * GAUGE.size + g)
      v = max ? Math.max(v, x) : v + x
    }
    return v
  }

  /** Redis as the workers see it: -1 no worker uses Redis, 0 some worker's connection is down, 1 all are up. */
  redisUp(): number {
    let seen = false
    for (let s = 0; s < this.#stripes.length; s++) {
      const x = Atomics.load(this.#i32, this.#stripes[s] + REDIS_GAUGE)
      if (x === RedisState.DOWN) return 0
      if (x === RedisState.UP) seen = true
    }
    return seen ? 1 : -1
  }

  // Plain reads: Uint32 element reads never tear, and order does not matter here. The high word is read on both
  // sides of the low one so a carry between them is seen; the one case left — the low word already wrapped, its
  // carry not yet added — lasts a few instructions once per 2^32 increments of one cell.
  #read(word: number): number {
    const u = this.#u32
    let hi = u[word + 1]
    let lo = u[word]
    const hi2 = u[word + 1]
    if (hi !== hi2) {
      hi = hi2
      lo = u[word]
    }
    return hi * TWO32 + lo
  }
}
