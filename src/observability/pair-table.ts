// Combinations of two label slots that have been seen — (route, upstream) for request series, (upstream, model) for
// token series — each given a slot of its own, so the stripes hold counters only for pairs that occur instead of
// the full cross product. Same claiming scheme as LabelTable; the local cache is a flat Int16Array indexed by
// a * capB + b, so the hot-path lookup is one array read.
export class PairTable {
  readonly #i32: Int32Array
  /** word offset of `next`; descriptor i is word base + 1 + i, holding ((a << 16) | b) + 1, 0 while unwritten */
  readonly #base: number
  readonly cap: number
  readonly #capB: number
  readonly #cache: Int16Array

  constructor(sab: SharedArrayBuffer, base: number, cap: number, capA: number, capB: number) {
    this.#i32 = new Int32Array(sab)
    this.#base = base
    this.cap = cap
    this.#capB = capB
    this.#cache = new Int16Array(capA * capB).fill(-1)
  }

  /** Main thread, once: slot 0 is the (other, other) pair that takes everything past the cap. */
  init(): void {
    Atomics.store(this.#i32, this.#base + 1, 1)
    Atomics.store(this.#i32, this.#base, 1)
  }

  slot(a: number, b: number): number {
    const s = this.#cache[a * this.#capB + b]
    return s >= 0 ? s : this.#miss(a, b)
  }

  get used(): number {
    return Math.min(Atomics.load(this.#i32, this.#base), this.cap)
  }

  /** [a, b] of a slot, or null while unwritten. */
  pair(slot: number): [number, number] | null {
    const d = Atomics.load(this.#i32, this.#base + 1 + slot) - 1
    return d < 0 ? null : [d >>> 16, d & 0xffff]
  }

  #miss(a: number, b: number): number {
    const want = ((a << 16) | b) + 1
    let slot = -1
    const n = this.used
    for (let i = 1; i < n; i++) {
      if (Atomics.load(this.#i32, this.#base + 1 + i) === want) {
        slot = i
        break
      }
    }
    if (slot < 0) {
      const claimed = Atomics.add(this.#i32, this.#base, 1)
      if (claimed < this.cap) {
        Atomics.store(this.#i32, this.#base + 1 + claimed, want)
        slot = claimed
      } else {
        slot = 0
      }
    }
    this.#cache[a * this.#capB + b] = slot
    return slot
  }
}
