// Span ids for upstream attempts of traced requests, from one pre-filled random buffer (as accept does for request
// and trace ids: a crypto call per id costs more than the span it names).
import { randomFillSync } from 'node:crypto'

const pool = Buffer.alloc(1024)
let off = pool.length

export function spanId(): string {
  if (off + 8 > pool.length) {
    randomFillSync(pool)
    off = 0
  }
  const s = pool.toString('hex', off, off + 8)
  off += 8
  return s
}
