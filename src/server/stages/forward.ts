// Stage 7 — forward: build the upstream request (headers rewritten once, credentials policy, forwarding headers)
// and hand it to the target's undici pool with a ResponseStream as the dispatch handler. undici's own
// headersTimeout/bodyTimeout implement first_byte and idle, so no timer of ours is armed per request.
import { type RequestState } from '../request-state.js'
import { dropClientCredentials } from './accept.js'
import { hasBody, StreamingBody } from '../body.js'
import { ResponseStream } from './stream.js'
import { replyError } from '../reply.js'
import type { Dispatcher } from 'undici'

export function forward(s: RequestState): void {
  const up = s.upstream!
  const route = s.route!
  if (up.ownCredentials || route.auth === 'key') dropClientCredentials(s)
  const t = up.targets[s.target]
  const h = s.headers
  const inj = up.injected
  for (let i = 0; i < inj.length; i += 2) h.push(inj[i], inj[i + 1])
  h.push(
    'host', up.preserveHost && s.host !== '' ? s.host : t.host,
    'x-forwarded-for', s.forwardedFor,
    'x-forwarded-proto', 'http',
    'x-request-id', s.requestId,
    'traceparent', s.traceparent,
  )
  if (s.host !== '') h.push('x-forwarded-host', s.host)

  let body: Dispatcher.DispatchOptions['body'] = null
  if (s.body !== null) {
    body = s.body.length > 0 ? s.body : null
  } else if (hasBody(s)) {
    if (s.contentLength >= 0) h.push('content-length', String(s.contentLength))
    body = s.streamBody ?? new StreamingBody(s)
  }

  const handler = new ResponseStream(s)
  try {
    t.pool.dispatch(
      {
        path: s.query === '' ? s.upstreamPath : `${s.upstreamPath}?${s.query}`,
        method: s.method as Dispatcher.HttpMethod,
        headers: h,
        body,
        headersTimeout: up.firstByteTimeout,
        bodyTimeout: up.idleTimeout,
        blocking: true,
      },
      handler,
    )
  } catch (err) {
    // dispatch throws synchronously only for invalid arguments (e.g. a header value undici refuses)
    s.errorDetail = (err as Error).message
    replyError(s, 'LEAKY_BAD_REQUEST')
  }
}
