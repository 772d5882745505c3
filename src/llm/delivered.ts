// Tokens of text already sent to a client, kept bounded: text accumulates until a segment is long enough, then
// the segment is counted and dropped, so a long stream holds a count and at most one segment of text.
//
// A segment ends only before a space that sits between two non-space characters: the o200k pre-tokenizer always
// starts a new piece there (the space joins the following word), so counting segments apart gives the same total
// as counting the whole text.
//
// A run of text with no such space (CJK, a long run of one character) is cut hard every MAX_RUN characters, which
// may miscount by a token per cut. The reason is cost, not memory: the BPE is quadratic in the length of one
// pre-tokenizer piece, and a CJK run is a single piece (measured with gpt-tokenizer 4 on this machine: 1 K characters
// ~5 ms, 4 K ~65 ms, 16 K ~1.3 s, 160 K ~2 min).
//
// Most responses are shorter than one segment and end with usage reported by the upstream: then the BPE never
// runs at all, which is why a segment is 16 K characters rather than a few KiB.
import { bpeTokens as countTokens } from './bpe.js'

export const SEGMENT = 16384
export const MAX_RUN = 1024

const SPACE = 0x20

function isSpace(c: number): boolean {
  return c === SPACE || c === 0x0a || c === 0x0d || c === 0x09
}

export class DeliveredText {
  /** tokens of the segments already counted and dropped */
  counted = 0
  /** text not yet counted */
  pending = ''
  /** characters ever added */
  chars = 0
  /** where in `pending` the last safe cut point is (0: its start) */
  private runStart = 0

  add(text: string): void {
    if (text.length === 0) return
    this.chars += text.length
    let p = this.pending + text
    let runStart = this.runStart
    for (let i = this.pending.length; i < p.length; i++) {
      const c = p.charCodeAt(i)
      if (i >= 2 && !isSpace(c) && p.charCodeAt(i - 1) === SPACE && !isSpace(p.charCodeAt(i - 2))) runStart = i - 1
      if (i + 1 - runStart < MAX_RUN) continue
      let at = i + 1
      // never split a surrogate pair
      if (c >= 0xd800 && c <= 0xdbff) at--
      this.counted += countTokens(p.slice(0, at))
      p = p.slice(at)
      i -= at
      runStart = 0
    }
    if (p.length >= SEGMENT && runStart > 0) {
      this.counted += countTokens(p.slice(0, runStart))
      p = p.slice(runStart)
      runStart = 0
    }
    this.pending = p
    this.runStart = runStart
  }

  /** Tokens of everything added so far. */
  tokens(): number {
    return this.counted + countTokens(this.pending)
  }

  reset(): void {
    this.counted = 0
    this.pending = ''
    this.chars = 0
    this.runStart = 0
  }
}

/** countTokens in segments, with the same cuts: bounded cost for any text, equal to countTokens for prose. */
export function countTokensSegmented(text: string): number {
  if (text.length < MAX_RUN) return countTokens(text)
  const d = new DeliveredText()
  d.add(text)
  return d.tokens()
}
