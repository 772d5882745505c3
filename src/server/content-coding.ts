// Decoding a compressed response on its way to the client, for the usage meter. The forward stage asks metered
// upstreams for `Accept-Encoding: identity`, so this runs only when one compresses anyway (a CDN in front, a
// server that ignores the header): the client then gets the decoded body (no Content-Encoding), which is valid
// for any Accept-Encoding it sent, and the meter reads — and may strip — plain bytes. README "Compressed answers"
// has the measurement behind the choice.
//
// zlib's streams run off the event loop and answer asynchronously, in order; the sink gets the decoded bytes, the
// end, or the failure (corrupt or truncated input) exactly once. write() returning false means zlib's buffer is
// full: the caller pauses the upstream until drained().
import zlib from 'node:zlib'

export type Coding = 'gzip' | 'deflate' | 'br'

/** A Content-Encoding value as a coding this decodes, `identity` (none), or `unknown` (passed through unread). */
export function codingOf(v: string | string[] | undefined): Coding | 'identity' | 'unknown' {
  if (v === undefined) return 'identity'
  if (typeof v !== 'string') return 'unknown' // several Content-Encoding headers: layered codings
  const c = v.trim().toLowerCase()
  switch (c) {
    case '':
    case 'identity':
      return 'identity'
    case 'gzip':
    case 'x-gzip':
      return 'gzip'
    case 'deflate':
      return 'deflate'
    case 'br':
      return 'br'
    default:
      return 'unknown' // zstd, compress, or a list ("gzip, br")
  }
}

export interface DecodeSink {
  decoded(chunk: Buffer): void
  decodeEnded(): void
  decodeFailed(err: Error): void
  drained(): void
}

export class ContentDecoder {
  readonly coding: Coding
  private z: zlib.Gunzip | zlib.Inflate | zlib.InflateRaw | zlib.BrotliDecompress | null = null
  private readonly sink: DecodeSink
  private done = false
  /** the first byte of a deflate body while it arrived alone */
  private held: Buffer | null = null

  constructor(coding: Coding, sink: DecodeSink) {
    this.coding = coding
    this.sink = sink
  }

  /** Feed compressed bytes; false when the caller should pause the upstream until drained(). */
  write(chunk: Buffer): boolean {
    if (this.done) return true
    if (this.z === null) {
      // deflate is told apart by its first two bytes (zlibHeader): a first read of one byte waits for the next
      if (this.held !== null) {
        chunk = Buffer.concat([this.held, chunk])
        this.held = null
      }
      if (this.coding === 'deflate' && chunk.length < 2) {
        if (chunk.length > 0) this.held = chunk
        return true
      }
      this.z = this.open(chunk)
    }
    return this.z.write(chunk)
  }

  end(): void {
    if (this.done) return
    if (this.z === null) {
      // an empty compressed body: nothing to decode
      if (this.held === null) return this.finish()
      // a one-byte deflate body: zlib says what it makes of it (too short: the failure)
      this.z = this.open(this.held)
      this.z.write(this.held)
      this.held = null
    }
    // end() right behind a write makes zlib decode that last write with its finishing flush, and a truncated body
    // then fails in that same call, which loses everything the call decoded: flush first, so the last bytes come
    // out as 'data' before the end can fail
    const z = this.z
    z.flush(() => {
      if (!this.done) z.end()
    })
  }

  pause(): void {
    this.z?.pause()
  }

  resume(): void {
    this.z?.resume()
  }

  /** The response is given up (client gone, upstream failed): no more callbacks. */
  destroy(): void {
    this.done = true
    this.z?.destroy()
  }

  private open(first: Buffer): zlib.Gunzip | zlib.Inflate | zlib.InflateRaw | zlib.BrotliDecompress {
    let z
    switch (this.coding) {
      case 'gzip':
        z = zlib.createGunzip()
        break
      case 'deflate':
        // RFC 9110 deflate is zlib-wrapped, yet some servers send raw deflate: the zlib header tells them apart
        z = zlibHeader(first) ? zlib.createInflate() : zlib.createInflateRaw()
        break
      case 'br':
        z = zlib.createBrotliDecompress()
        break
    }
    z.on('data', (d: Buffer) => {
      if (!this.done) this.sink.decoded(d)
    })
    z.on('end', () => this.finish())
    z.on('error', (err: Error) => {
      if (this.done) return
      // output zlib made before the failure but held while the sink had it paused (a slow client) did decode: it
      // goes to the client and the meter before the failure. A failed zlib stream still hands out what it buffered,
      // and read() emits no 'data' once the error is out, so nothing is delivered twice.
      for (let d = z.read() as Buffer | null; d !== null; d = z.read() as Buffer | null) this.sink.decoded(d)
      this.done = true
      this.sink.decodeFailed(err)
    })
    z.on('drain', () => {
      if (!this.done) this.sink.drained()
    })
    return z
  }

  private finish(): void {
    if (this.done) return
    this.done = true
    this.sink.decodeEnded()
  }
}

/** CMF/FLG of a zlib stream: compression method 8 and a header checksum divisible by 31 (RFC 1950). */
function zlibHeader(b: Buffer): boolean {
  return b.length >= 2 && (b[0] & 0x0f) === 8 && ((b[0] << 8) | b[1]) % 31 === 0
}
