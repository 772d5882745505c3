// Tokens of text already sent to a client, kept bounded: text accumulates until a segment is long enough, then
// the segment is counted and dropped, so a long stream holds a count and at most one segment of text.
//
// A segment is cut only before a space that sits between two non-space characters: the o200k pre-tokenizer
// starts a new piece there (the space joins the following word), so counting segments apart gives the same total
// as counting the whole text. Text with no such space (CJK, a long token run) is cut hard at MAX_SEGMENT, which
// may miscount by a token per cut.
//
// Most responses are shorter than one segment and end with usage reported by the upstream: then the BPE never
// runs at all, which is why a segment is 16 K characters rather than a few KiB.
import { countTokens } from './tokenizer.js'

export const SEGMENT = 16384
export const MAX_SEGMENT = 65536

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
  /** `pending` up to here holds no cut point: spaceless text is not rescanned on every add */
  private checked = 0

  add(text: string): void {
    if (text.length === 0) return
    this.chars += text.length
    this.pending += text
    if (this.pending.length >= SEGMENT) this.cut()
  }

  /** Tokens of everything added so far. */
  tokens(): number {
    return this.counted + countTokens(this.pending)
  }

  reset(): void {
    this.counted = 0
    this.pending = ''
    this.chars = 0
    this.checked = 0
  }

  private cut(): void {
    const p = this.pending
    let at = -1
    const from = this.checked > 1 ? this.checked - 1 : 1
    for (let i = p.length - 2; i >= from; i--) {
      if (p.charCodeAt(i) === SPACE && !isSpace(p.charCodeAt(i - 1)) && !isSpace(p.charCodeAt(i + 1))) {
        at = i
        break
      }
    }
    if (at < 0) {
      if (p.length < MAX_SEGMENT) {
        this.checked = p.length - 1
        return
      }
      at = p.length
      // never split a surrogate pair
      const c = p.charCodeAt(at - 1)
      if (c >= 0xd800 && c <= 0xdbff) at--
    }
    this.counted += countTokens(p.slice(0, at))
    this.pending = p.slice(at)
    this.checked = 0
  }
}
