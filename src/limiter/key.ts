// The bucket key: the limit name and the scope value, stored in full in the slot so two keys are compared exactly
// and a hash collision is detected, never merged. Layout (KEY_MAX = 64 bytes, zero-padded to whole 32-bit words):
//   [name length: 1 byte][name UTF-8][zero padding to a 4-byte boundary][scope value UTF-8]
// The length prefix makes (name, scope) -> bytes injective; the padding lets the name part be a precomputed run of
// words per limit and the scope part a cached run of words per scope string (see KeyBuffer.set). A key longer than
// KEY_MAX bytes is replaced by the SHA-256 digest of its bytes (32 bytes, stored in full) and tagged with DIGEST_FLAG
// in its length code, so a digest can never equal a raw key.
import { createHash } from 'node:crypto'

/** Key bytes stored in a slot. Longer keys are stored as their SHA-256 digest. */
export const KEY_MAX = 64
export const KEY_WORDS = KEY_MAX / 4
/** Length-code bit marking a SHA-256 digest key. */
export const DIGEST_FLAG = 0x100

/** Test hook: a replacement hash over the key bytes (e.g. a constant, to force every key onto one slot). */
export type KeyHash = (bytes: Uint8Array, length: number) => number

/** The name part of a limit's keys, padded to whole words. */
export function keyPrefixWords(nameUtf8: Uint8Array): Int32Array {
  const w = new Int32Array((nameUtf8.length + 4) >> 2)
  const b = new Uint8Array(w.buffer)
  b[0] = nameUtf8.length
  b.set(nameUtf8, 1)
  return w
}

/**
 * One reusable key buffer per table object (i.e. per thread). Encoding is by hand (charCodeAt) rather than
 * TextEncoder: for the short ASCII values we see (key ids, orgs, IPs) the loop is several times faster than
 * encodeInto and allocates nothing; the last scope string's encoding is kept, because a request charges several
 * limits with the same scope value (bench/micro/limiter.mjs).
 */
export class KeyBuffer {
  /** the key: `code & 0xff` bytes, zero-padded to a whole word */
  readonly words = new Int32Array(KEY_WORDS)
  readonly bytes = new Uint8Array(this.words.buffer)
  /** byte length (0..KEY_MAX), or DIGEST_FLAG | 32 */
  code = 0
  hash = 0
  private readonly hashFn: KeyHash | null
  // the last scope value, UTF-8 in sw/sb (sLen bytes; -1: longer than KEY_MAX)
  private scope: string | null = null
  private readonly sw = new Int32Array(KEY_WORDS + 1)
  private readonly sb = new Uint8Array(this.sw.buffer)
  private sLen = 0
  // the (prefix, scope) the buffer holds now
  private prefix: Int32Array | null = null

  constructor(hashFn: KeyHash | null) {
    this.hashFn = hashFn
  }

  /** Load the key (limit name prefix, scope value) and its hash. */
  set(prefix: Int32Array, scope: string): void {
    if (scope !== this.scope) {
      this.encodeScope(scope)
      this.prefix = null
    } else if (prefix === this.prefix) return
    this.prefix = prefix
    const pw = prefix.length
    const n = pw * 4 + this.sLen
    if (this.sLen < 0 || n > KEY_MAX) return this.setDigest(prefix, scope)
    const w = this.words
    for (let i = 0; i < pw; i++) w[i] = prefix[i]
    const sw = this.sw
    const end = (n + 3) >> 2
    for (let i = pw, j = 0; i < end; i++, j++) w[i] = sw[j]
    this.finish(n, n)
  }

  /** Load a stored key (from a snapshot record or a slot): `code` is its length code. */
  setStored(src: Uint8Array, offset: number, code: number): void {
    this.prefix = null
    const n = code & 0xff
    const b = this.bytes
    for (let i = 0; i < n; i++) b[i] = src[offset + i]
    const end = (n + 3) & ~3
    for (let i = n; i < end; i++) b[i] = 0
    this.finish(n, code)
  }

  // UTF-8 into sb, zero-padded to a word; sLen = -1 when longer than KEY_MAX
  private encodeScope(scope: string): void {
    this.scope = scope
    const b = this.sb
    const len = scope.length
    let n = 0
    for (let i = 0; i < len; i++) {
      if (n > KEY_MAX - 4) {
        this.sLen = -1
        return
      }
      let c = scope.charCodeAt(i)
      if (c < 0x80) {
        b[n++] = c
      } else if (c < 0x800) {
        b[n++] = 0xc0 | (c >> 6)
        b[n++] = 0x80 | (c & 0x3f)
      } else {
        if (c >= 0xd800 && c <= 0xdbff && i + 1 < len) {
          const d = scope.charCodeAt(i + 1)
          if (d >= 0xdc00 && d <= 0xdfff) {
            c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
            b[n++] = 0xf0 | (c >> 18)
            b[n++] = 0x80 | ((c >> 12) & 0x3f)
            b[n++] = 0x80 | ((c >> 6) & 0x3f)
            b[n++] = 0x80 | (c & 0x3f)
            i++
            continue
          }
        }
        // a lone surrogate becomes U+FFFD, as TextEncoder and Buffer.from do
        if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd
        b[n++] = 0xe0 | (c >> 12)
        b[n++] = 0x80 | ((c >> 6) & 0x3f)
        b[n++] = 0x80 | (c & 0x3f)
      }
    }
    const end = (n + 3) & ~3
    for (let i = n; i < end; i++) b[i] = 0
    this.sLen = n
  }

  private setDigest(prefix: Int32Array, scope: string): void {
    const pb = new Uint8Array(prefix.buffer, prefix.byteOffset, prefix.byteLength)
    const d = createHash('sha256').update(pb).update(scope, 'utf8').digest()
    this.bytes.set(d)
    this.finish(32, DIGEST_FLAG | 32)
  }

  private finish(n: number, code: number): void {
    this.code = code
    this.hash = this.hashFn === null ? hashWords(this.words, (n + 3) >> 2, code) : this.hashFn(this.bytes, n) | 0
  }
}

/** Number of 32-bit words a key of length code `code` occupies. */
export function keyWords(code: number): number {
  return ((code & 0xff) + 3) >> 2
}

// MurmurHash3 (x86, 32-bit) over whole words, seeded with the length code.
function hashWords(w: Int32Array, n: number, code: number): number {
  let h = code ^ 0x9747b28c
  for (let i = 0; i < n; i++) {
    let k = Math.imul(w[i], 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  h ^= n << 2
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h
}
