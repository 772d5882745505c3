// Incremental Server-Sent Events splitter. Chunks arrive cut anywhere; the splitter finds where each event ends
// (a blank line, with any of the three line ends SSE allows: LF, CRLF, CR) and reports the event's raw byte range,
// so a caller can forward events byte-exact, drop one, or read its `data:` payload. It holds only the bytes of the
// current incomplete event, up to a cap; past the cap it gives up (`overflowed`) and everything passes through
// unparsed. Never throws: malformed input is just bytes.

const LF = 0x0a
const CR = 0x0d
const COLON = 0x3a
const SPACE = 0x20

const EMPTY = Buffer.alloc(0)

/** A default cap: a provider's event is a few hundred bytes; 1 MiB means something is wrong. */
export const MAX_EVENT_BYTES = 1 << 20

export class SseSplitter {
  /** bytes being scanned: the held part of an incomplete event followed by the latest chunk */
  buf: Buffer = EMPTY
  /** the current event's raw range in `buf` (terminator included), valid after next() returned true */
  start = 0
  end = 0
  /** bytes at the start of `buf` that belong to complete events (or pass through after an overflow) */
  consumed = 0
  /** gave up on an event larger than the cap: from then on every byte passes through unparsed */
  overflowed = false
  readonly maxEvent: number
  /** scan position in `buf` */
  private pos = 0
  /** the scan sits right after a line end (or at the start of an event) */
  private lineStart = true
  /** `buf` holds a CR: lines may end CR or CRLF, so scan byte by byte; without one (the usual case) lines end LF
   * and Buffer.indexOf (native) finds them */
  private hasCR = false

  constructor(maxEvent = MAX_EVENT_BYTES) {
    this.maxEvent = maxEvent
  }

  /** Add a chunk; then call next() until it returns false. Bytes held from the previous chunk come first in `buf`. */
  push(chunk: Buffer): void {
    if (this.overflowed) {
      this.buf = chunk
      this.consumed = chunk.length
      this.pos = chunk.length
      return
    }
    const held = this.buf.length - this.consumed
    if (held > 0) {
      // only an event split across chunks costs a copy; providers mostly write whole events per chunk
      this.buf = Buffer.concat([this.buf.subarray(this.consumed), chunk], held + chunk.length)
      this.pos -= this.consumed
    } else {
      this.buf = chunk
      this.pos = 0
    }
    this.consumed = 0
    this.hasCR = this.buf.indexOf(CR) >= 0
  }

  /** Bytes held for an incomplete event. */
  get held(): number {
    return this.buf.length - this.consumed
  }

  /** Advance to the next complete event in `buf`; false when none is complete (its bytes stay held). */
  next(): boolean {
    if (!this.hasCR) return this.nextLf()
    const buf = this.buf
    const len = buf.length
    let i = this.pos
    let lineStart = this.lineStart
    while (i < len) {
      const c = buf[i]
      if (c !== LF && c !== CR) {
        lineStart = false
        i++
        continue
      }
      let eol = i + 1
      if (c === CR) {
        // a CR may be the first half of CRLF: decide only once the next byte is here
        if (eol === len) break
        if (buf[eol] === LF) eol++
      }
      i = eol
      if (lineStart) return this.complete(eol)
      lineStart = true
    }
    return this.incomplete(i, lineStart)
  }

  /** next() for a buffer whose lines all end LF: jumps from line end to line end natively. */
  private nextLf(): boolean {
    const buf = this.buf
    const len = buf.length
    let i = this.pos
    let lineStart = this.lineStart
    while (i < len) {
      if (buf[i] === LF) {
        i++
        if (lineStart) return this.complete(i)
        lineStart = true
        continue
      }
      lineStart = false
      const nl = buf.indexOf(LF, i)
      i = nl < 0 ? len : nl
    }
    return this.incomplete(i, lineStart)
  }

  /** The current event is `consumed`..`end`; the next one starts after it. */
  private complete(end: number): true {
    this.start = this.consumed
    this.end = end
    this.consumed = end
    this.pos = end
    this.lineStart = true
    return true
  }

  /** No complete event from here: remember where the scan stands; give up past the cap. */
  private incomplete(i: number, lineStart: boolean): false {
    this.pos = i
    this.lineStart = lineStart
    if (this.buf.length - this.consumed > this.maxEvent) {
      this.overflowed = true
      this.consumed = this.buf.length
      this.pos = this.buf.length
    }
    return false
  }

  /**
   * The stream ended: treat held bytes (an event without its blank line) as a last event. True when there was one;
   * its range is then `start`..`end` like any other.
   */
  finish(): boolean {
    if (this.overflowed || this.consumed === this.buf.length) return false
    return this.complete(this.buf.length)
  }

  /** The current event's raw bytes (a view into `buf`: copy it to keep it past the next push). */
  raw(): Buffer {
    return this.buf.subarray(this.start, this.end)
  }

  /**
   * The current event's `data` field: its data lines joined by LF, as SSE defines; null when it has none
   * (a comment, a keep-alive, an `event:`-only event).
   */
  data(): string | null {
    const buf = this.buf
    const end = this.end
    let out: string | null = null
    let i = this.start
    const lfOnly = !this.hasCR
    while (i < end) {
      let eol: number
      if (lfOnly) {
        eol = buf.indexOf(LF, i)
        if (eol < 0 || eol > end) eol = end
      } else {
        eol = i
        while (eol < end && buf[eol] !== LF && buf[eol] !== CR) eol++
      }
      if (eol - i >= 4 && buf[i] === 0x64 && buf[i + 1] === 0x61 && buf[i + 2] === 0x74 && buf[i + 3] === 0x61 &&
        (eol === i + 4 || buf[i + 4] === COLON)) {
        let v = i + 5
        if (v > eol) v = eol
        else if (v < eol && buf[v] === SPACE) v++
        const value = buf.toString('utf8', v, eol)
        out = out === null ? value : out + '\n' + value
      }
      i = eol
      if (i < end && buf[i] === CR) i++
      if (i < end && buf[i] === LF) i++
    }
    return out
  }
}
