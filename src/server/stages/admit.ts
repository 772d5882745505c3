// Stage 6 — admit: the global concurrency gate, shared by all worker threads through one SharedArrayBuffer word.
// Beyond server.max_inflight the request is shed with 503 + Retry-After instead of queueing without bound.
import { Next, type RequestState } from '../request-state.js'
import { ctx } from '../context.js'
import { replyError } from '../reply.js'

const RETRY_AFTER = ['retry-after', '1']

export function admit(s: RequestState): Next {
  if (Atomics.add(ctx.inflight, 0, 1) >= s.plan.maxInflight) {
    Atomics.sub(ctx.inflight, 0, 1)
    return replyError(s, 'LEAKY_OVERLOADED', false, RETRY_AFTER)
  }
  s.inflightTaken = true
  ctx.local++
  return Next.CONTINUE
}
