// Made-up completion texts, deterministic in (seed, length). A text is a sequence of pieces that o200k encodes as
// exactly one token each, and whose boundaries the o200k pre-tokenizer never merges across (a piece is a lower-case
// word with its leading space, a capitalised sentence start, or "."), so a text of n pieces is n tokens and any
// prefix of i pieces is i tokens: streamed deltas and the final usage agree. `tokens` is still measured with the
// product's tokenizer on the full text, so usage is exact by construction, not by argument
// (test/stub/text.test.ts checks the argument too).
import { countTokens } from '../llm/tokenizer.js'
import { Rng } from './prng.js'

/** Default completion length when neither the request nor `x-stub-tokens` says. */
export const DEFAULT_TOKENS = 16
/** Longest completion the stub makes: bounds the memory of one cached text. */
export const MAX_TOKENS = 16384

// 128 common words (a power of two: a draw is one mask); each of " w", "W" and " W" is one o200k token.
export const WORDS: readonly string[] = [
  'the', 'of', 'and', 'to', 'in', 'is', 'was', 'for', 'that', 'on', 'with', 'as', 'by', 'at', 'from', 'it',
  'be', 'this', 'are', 'or', 'an', 'which', 'have', 'not', 'but', 'had', 'his', 'they', 'you', 'were', 'her', 'one',
  'all', 'we', 'can', 'has', 'there', 'been', 'if', 'more', 'when', 'will', 'would', 'who', 'so', 'no', 'she', 'other',
  'its', 'may', 'these', 'time', 'about', 'than', 'them', 'some', 'could', 'into', 'only', 'their', 'two', 'over', 'also', 'any',
  'new', 'first', 'most', 'such', 'what', 'then', 'through', 'where', 'after', 'years', 'well', 'those', 'many', 'made', 'way', 'under',
  'state', 'both', 'just', 'world', 'life', 'even', 'because', 'each', 'great', 'own', 'good', 'work', 'long', 'few', 'people', 'day',
  'does', 'make', 'know', 'year', 'while', 'back', 'part', 'being', 'high', 'found', 'right', 'set', 'small', 'large', 'place', 'end',
  'same', 'another', 'since', 'still', 'old', 'city', 'water', 'home', 'power', 'house', 'group', 'number', 'during', 'land', 'light', 'young',
]

const SPACED = WORDS.map((w) => ' ' + w)
const CAPITAL = WORDS.map((w) => w[0].toUpperCase() + w.slice(1))
const SPACED_CAPITAL = CAPITAL.map((w) => ' ' + w)

/**
 * One generated text. Pieces contain only ASCII letters, spaces and '.', so `'"' + piece + '"'` is already valid
 * JSON: renderers splice pieces into prebuilt JSON without escaping.
 */
export class Completion {
  readonly pieces: string[]
  readonly text: string
  /** countTokens(text) */
  readonly tokens: number
  /** ends[i] is the offset in `text` just after piece i */
  readonly ends: Uint32Array

  constructor(pieces: string[]) {
    this.pieces = pieces
    this.text = pieces.join('')
    this.tokens = countTokens(this.text)
    this.ends = new Uint32Array(pieces.length)
    let off = 0
    for (let i = 0; i < pieces.length; i++) {
      off += pieces[i].length
      this.ends[i] = off
    }
  }

  /** text of pieces [from, to) */
  slice(from: number, to: number): string {
    return this.text.slice(from === 0 ? 0 : this.ends[from - 1], to === 0 ? 0 : this.ends[to - 1])
  }
}

function generate(seed: number, n: number): Completion {
  const rng = new Rng(seed)
  const pieces = new Array<string>(n)
  let left = 0 // pieces still to place in the current sentence (its '.' included); 0 = next piece starts one
  for (let i = 0; i < n; i++) {
    if (left === 0) {
      const w = rng.next() & 127
      pieces[i] = i === 0 ? CAPITAL[w] : SPACED_CAPITAL[w]
      left = 4 + (rng.next() % 11)
    } else if (left === 1) {
      pieces[i] = '.'
      left = 0
    } else {
      pieces[i] = SPACED[rng.next() & 127]
      left--
    }
  }
  return new Completion(pieces)
}

// Bounded by total pieces, not entries: a few 16k-token texts must not pin hundreds of MB. Cleared wholesale
// when full, which is cheaper than LRU bookkeeping and fine for a workload that repeats a handful of prompts.
const CACHE_MAX_PIECES = 2_000_000
const cache = new Map<number, Completion>()
let cachedPieces = 0

/** The text of `n` tokens (0..MAX_TOKENS) for `seed`; cached, so a benchmark's repeated prompt is generated once. */
export function completionFor(seed: number, n: number): Completion {
  // n < 2^15 and seed < 2^32: the key stays an exact integer
  const key = (seed >>> 0) * 32768 + n
  let c = cache.get(key)
  if (c === undefined) {
    c = generate(seed, n)
    if (cachedPieces + n > CACHE_MAX_PIECES) {
      cache.clear()
      cachedPieces = 0
    }
    cache.set(key, c)
    cachedPieces += n
  }
  return c
}
