// Determinism primitives for the stub: a tiny PRNG and a string hash. Everything the stub makes up (texts,
// vectors, ids, jitter) comes from these, so the same seed and request give the same bytes on every machine.

/** mulberry32: one 32-bit word of state, good enough statistics for made-up text, and no allocation per draw. */
export class Rng {
  s: number

  constructor(seed: number) {
    this.s = seed >>> 0
  }

  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }

  /** uniform in [0, 1) */
  float(): number {
    return this.next() / 4294967296
  }
}

/** FNV-1a over UTF-16 code units: cheap, stable, and the same for a string however it was decoded. */
export function hashText(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** Combines two 32-bit values into a well-spread seed (murmur3 finaliser), so seed 1 and seed 2 diverge at once. */
export function mixSeed(a: number, b: number): number {
  let h = (a ^ Math.imul(b, 0x9e3779b1)) >>> 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
