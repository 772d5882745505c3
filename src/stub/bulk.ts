// Test helpers that are not LLM APIs: a byte source for big-response and backpressure tests, an echo for checking
// what a proxy forwarded, and a health probe.
import type { Exchange } from './exchange.js'

/** `GET /__stub/bytes?n=N`: N bytes, byte k being k & 0xff, streamed with backpressure. */
export function bytes(ex: Exchange): void {
  const n = Number(new URLSearchParams(ex.query).get('n') ?? '0')
  if (!Number.isSafeInteger(n) || n < 0) {
    ex.error(400, 'n must be a non-negative integer')
    return
  }
  ex.bytesReply(n)
}

/** `ANY /__stub/echo`: what arrived, with the body's size (counted, never kept past 16 MiB). */
export function echo(ex: Exchange): void {
  ex.json(JSON.stringify({ method: ex.method, url: ex.url, headers: ex.req.headers, bodyBytes: ex.bodyBytes }))
}

const HEALTHY = '{"status":"ok"}'

export function health(ex: Exchange): void {
  ex.json(HEALTHY)
}
