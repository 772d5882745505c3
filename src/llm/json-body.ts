// A JSON response body seen on its way to the client: the proxy forwards every chunk as it arrives and keeps a
// bounded copy to read usage from at the end. Up to COPY_CAP the whole body is kept; past it only the first
// HEAD bytes and the last TAIL bytes, which is where providers put `model` and `usage` (after the choices,
// candidates or embedding vectors that make a body large).
//
// Reading looks for the usage object by its key from the end (a key inside a JSON string is escaped, `\"usage\"`,
// so the pattern only finds real keys), then falls back to parsing the whole copy. Never throws.

export const COPY_CAP = 4 << 20
const HEAD = 4096
const TAIL = 65536

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN = 0x7b
const CLOSE = 0x7d

const EMPTY = Buffer.alloc(0)

export class JsonBody {
  /** the whole body while it fits COPY_CAP, then its first HEAD bytes */
  private copy: Buffer
  private length = 0
  /** past COPY_CAP: a ring of the last TAIL bytes */
  private tail: Buffer | null = null
  private tailPos = 0
  private total = 0

  constructor() {
    this.copy = EMPTY
  }

  /** Bytes the body had in all. */
  get size(): number {
    return this.total
  }

  /** The copy stopped being the whole body. */
  get truncated(): boolean {
    return this.tail !== null
  }

  add(chunk: Buffer): void {
    this.total += chunk.length
    if (this.tail === null) {
      const need = this.length + chunk.length
      if (need <= COPY_CAP) {
        if (need > this.copy.length) {
          let size = this.copy.length === 0 ? 4096 : this.copy.length * 2
          while (size < need) size *= 2
          const grown = Buffer.allocUnsafe(size > COPY_CAP ? COPY_CAP : size)
          this.copy.copy(grown, 0, 0, this.length)
          this.copy = grown
        }
        chunk.copy(this.copy, this.length)
        this.length = need
        return
      }
      // too big to keep: keep the head, move the last TAIL bytes kept so far into the ring
      this.tail = Buffer.alloc(TAIL)
      const keep = this.length < TAIL ? this.length : TAIL
      this.ringWrite(this.copy.subarray(this.length - keep, this.length))
      const head = Buffer.allocUnsafe(HEAD)
      let n = this.copy.copy(head, 0, 0, this.length < HEAD ? this.length : HEAD)
      if (n < HEAD) n += chunk.copy(head, n, 0, HEAD - n)
      this.copy = head
      this.length = n
    }
    this.ringWrite(chunk)
  }

  /** The last bytes of the body (up to TAIL), as text. */
  tailText(): string {
    if (this.tail === null) {
      const from = this.length > TAIL ? this.length - TAIL : 0
      return this.copy.toString('utf8', from, this.length)
    }
    // ring is full once truncated (the body passed COPY_CAP > TAIL): oldest byte at tailPos
    return Buffer.concat([this.tail.subarray(this.tailPos), this.tail.subarray(0, this.tailPos)], TAIL).toString('utf8')
  }

  /** The whole body as text, or its first HEAD bytes once truncated. */
  headText(): string {
    return this.copy.toString('utf8', 0, this.length)
  }

  /** The whole body parsed, or undefined (truncated, or not JSON). */
  parse(): unknown {
    if (this.tail !== null) return undefined
    return parseJson(this.copy.toString('utf8', 0, this.length))
  }

  /** The object under the last `"key":` in the tail, parsed; null when there is none. */
  lastObject(key: string): Record<string, unknown> | null {
    return objectAfterKey(this.tailText(), key)
  }

  /** The string value of the first `"key":` in the head or else the last in the tail; '' when absent. */
  stringField(key: string): string {
    return stringAfterKey(this.headText(), key, false) || stringAfterKey(this.tailText(), key, true)
  }

  private ringWrite(b: Buffer): void {
    const ring = this.tail!
    if (b.length >= TAIL) {
      b.copy(ring, 0, b.length - TAIL)
      this.tailPos = 0
      return
    }
    const first = TAIL - this.tailPos
    if (b.length <= first) {
      b.copy(ring, this.tailPos)
      this.tailPos = (this.tailPos + b.length) % TAIL
    } else {
      b.copy(ring, this.tailPos, 0, first)
      b.copy(ring, 0, first)
      this.tailPos = b.length - first
    }
  }
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined // a body that is not JSON is not ours to judge: no usage in it
  }
}

/** Index just after `"key"` + optional spaces + `:` + optional spaces, searching from the end or the start. */
function valueAt(s: string, key: string, fromEnd: boolean): number {
  const pat = '"' + key + '"'
  let at = fromEnd ? s.lastIndexOf(pat) : s.indexOf(pat)
  while (at >= 0) {
    let i = at + pat.length
    while (i < s.length && s.charCodeAt(i) <= 0x20) i++
    if (s.charCodeAt(i) === 0x3a) {
      i++
      while (i < s.length && s.charCodeAt(i) <= 0x20) i++
      return i
    }
    at = fromEnd ? (at === 0 ? -1 : s.lastIndexOf(pat, at - 1)) : s.indexOf(pat, at + 1)
  }
  return -1
}

export function objectAfterKey(s: string, key: string): Record<string, unknown> | null {
  const i = valueAt(s, key, true)
  if (i < 0 || s.charCodeAt(i) !== OPEN) return null
  let depth = 0
  let inString = false
  for (let j = i; j < s.length; j++) {
    const c = s.charCodeAt(j)
    if (inString) {
      if (c === BACKSLASH) j++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) inString = true
    else if (c === OPEN) depth++
    else if (c === CLOSE && --depth === 0) {
      const v = parseJson(s.slice(i, j + 1))
      return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : null
    }
  }
  return null
}

export function stringAfterKey(s: string, key: string, fromEnd: boolean): string {
  const i = valueAt(s, key, fromEnd)
  if (i < 0 || s.charCodeAt(i) !== QUOTE) return ''
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j)
    if (c === BACKSLASH) j++
    else if (c === QUOTE) {
      const v = parseJson(s.slice(i, j + 1))
      return typeof v === 'string' ? v : ''
    }
  }
  return ''
}

/**
 * The text values of `"content"`/`"text"` keys in a JSON text that may be cut anywhere: what a client received of
 * a response that never finished. Used only when a non-streamed response is cut, to count what was delivered.
 */
export function partialTexts(s: string): string {
  const re = /"(?:content|text|reasoning_content)"\s*:\s*"((?:[^"\\]|\\.)*)/g
  let out = ''
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    let body = m[1]
    // a value cut inside a \uXXXX escape: drop the broken escape (a lone trailing backslash never matched)
    const u = /\\u[0-9a-fA-F]{0,3}$/.exec(body)
    if (u !== null && m.index + m[0].length === s.length && escapes(body, u.index)) body = body.slice(0, u.index)
    const v = parseJson('"' + body + '"')
    if (typeof v === 'string') out += v
  }
  return out
}

/** The backslash at `at` starts an escape: an even number of backslashes precede it. */
function escapes(s: string, at: number): boolean {
  let n = 0
  while (at - n - 1 >= 0 && s.charCodeAt(at - n - 1) === BACKSLASH) n++
  return n % 2 === 0
}
