// Mirroring (shadow traffic): a share of a route's requests is copied to a second upstream and its answer thrown
// away. The copy is sent beside the real request, never before it, and nothing of it reaches the client: it cannot
// slow the client (the client's answer never waits for it) nor cost the client anything (it is charged to no
// limit; the real request was charged once). Only requests whose body was read whole (LLM routes) or that have no
// body are copied: a body streamed through is not kept anywhere to send twice.
import type { Dispatcher } from 'undici'
import type { RequestState } from '../server/request-state.js'
import type { Upstream } from '../upstream/upstream.js'
import { CREDENTIAL_HEADERS } from '../upstream/upstream.js'
import { hasBody } from '../server/body.js'
import { ctx } from '../server/context.js'

export interface MirrorPlan {
  upstream: Upstream
  /** share of requests copied, 0..1 */
  share: number
}

/** Discards the mirrored answer; reads it to the end so the connection goes back to the pool. */
class MirrorHandler implements Dispatcher.DispatchHandler {
  readonly upstream: string
  constructor(upstream: string) {
    this.upstream = upstream
  }
  onRequestStart(): void {}
  onResponseStart(): void {}
  onResponseData(): void {}
  onResponseEnd(): void {
    mirrored.sent++
  }
  onResponseError(_c: unknown, err: Error): void {
    mirrored.failed++
    if (ctx.logger.isLevelEnabled('debug')) ctx.logger.debug({ msg: 'mirror failed', upstream: this.upstream, err: err.message })
  }
}

/** This worker's counts (for tests and the debug log; the client never sees them). */
export const mirrored = { sent: 0, failed: 0, skipped: 0 }

/** Copy the request to the mirror upstream, maybe (its share). Call before forward adds its own headers. */
export function mirror(s: RequestState, m: MirrorPlan): void {
  if (m.share < 1 && Math.random() >= m.share) return
  if (s.body === null && hasBody(s)) {
    mirrored.skipped++
    return
  }
  const up = m.upstream
  const t = up.targets[up.pick()]
  const headers: string[] = []
  const h = s.headers
  const dropCreds = up.ownCredentials || s.route!.auth === 'key'
  for (let i = 0; i < h.length; i += 2) {
    if (dropCreds && CREDENTIAL_HEADERS.has(h[i])) continue
    headers.push(h[i], h[i + 1])
  }
  for (let i = 0; i < up.injected.length; i += 2) headers.push(up.injected[i], up.injected[i + 1])
  headers.push('host', t.host, 'x-request-id', s.requestId, 'x-leaky-mirror', '1')
  const rel = s.upstreamPath.slice(s.upstream!.targets[s.target].basePath.length)
  const path = t.basePath + rel
  try {
    t.pool.dispatch({
      path: s.query === '' ? path : `${path}?${s.query}`,
      method: s.method as Dispatcher.HttpMethod,
      headers,
      body: s.body !== null && s.body.length > 0 ? s.body : null,
      headersTimeout: up.firstByteTimeout,
      bodyTimeout: up.idleTimeout,
    }, new MirrorHandler(up.name))
  } catch {
    mirrored.failed++
  }
}
