// Request bodies, two ways. LLM routes read the body whole (bounded by server.max_body) because the estimate stage
// must see the prompt before the limiter decides; every other route streams the body to the upstream as it
// arrives, pausing the client socket when the upstream does not keep up, so a large upload is never held whole.
import { Readable } from 'node:stream'
import { Next, type RequestState } from './request-state.js'
import { replyError } from './reply.js'

const EMPTY = Buffer.alloc(0)

/** Whether the request carries a body at all (uWS calls onData once with an empty last chunk otherwise). */
export function hasBody(s: RequestState): boolean {
  return s.chunked || s.contentLength > 0
}

/** Collect the whole body, then call `next`. Over max_body → 413 at once, the rest is not read. */
export function collectBody(s: RequestState, next: (s: RequestState) => void): Next {
  if (!hasBody(s)) {
    s.body = EMPTY
    next(s)
    return Next.PENDING
  }
  s.bodyParts = []
  s.res.onData((ab, last) => onCollect(s, ab, last, next))
  return Next.PENDING
}

function onCollect(s: RequestState, ab: ArrayBuffer, last: boolean, next: (s: RequestState) => void): void {
  if (s.finished) return
  const n = ab.byteLength
  if (n > 0) {
    s.bytesIn += n
    if (s.bytesIn > s.plan.maxBody) {
      replyError(s, 'LEAKY_BODY_TOO_LARGE', true)
      return
    }
    // uWS detaches the ArrayBuffer when this callback returns: copy it
    s.bodyParts!.push(Buffer.copyBytesFrom(new Uint8Array(ab)))
  }
  if (!last) return
  const parts = s.bodyParts!
  s.body = parts.length === 1 ? parts[0] : Buffer.concat(parts, s.bytesIn)
  s.bodyParts = null
  next(s)
}

/** A Readable fed by uWS onData, with backpressure: push() false → pause the client socket; _read → resume. */
export class StreamingBody extends Readable {
  readonly #s: RequestState
  #paused = false

  constructor(s: RequestState) {
    super({ highWaterMark: 64 * 1024 })
    this.#s = s
    s.res.onData((ab, last) => this.onChunk(ab, last))
  }

  onChunk(ab: ArrayBuffer, last: boolean): void {
    const s = this.#s
    if (s.finished) return
    const n = ab.byteLength
    if (n > 0) {
      s.bytesIn += n
      if (s.bytesIn > s.plan.maxBody) {
        this.destroy()
        replyError(s, 'LEAKY_BODY_TOO_LARGE', true)
        return
      }
      if (!this.push(Buffer.copyBytesFrom(new Uint8Array(ab))) && !last) {
        this.#paused = true
        s.res.pause()
      }
    }
    if (last) {
      // uWS keeps delivering what it had already read while paused, so the end can arrive paused; Readable never
      // calls _read after push(null), so resume here or the connection stays paused and its next request hangs
      if (this.#paused) {
        this.#paused = false
        s.res.resume()
      }
      this.push(null)
    }
  }

  override _read(): void {
    if (this.#paused && !this.#s.finished) {
      this.#paused = false
      this.#s.res.resume()
    }
  }
}
