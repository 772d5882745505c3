// The request pipeline of one worker thread: the stages of ARCHITECTURE §3, in order. Each stage either lets the
// request go on (CONTINUE), or has answered the client itself (REPLIED), or will resume it later (PENDING).
// Where a request is limited: stages/limit.ts · answered from the cache: stages/cache.ts · forwarded: stages/forward.ts,
// which owns the stages/stream.ts that relays the response · accounted: stages/account.ts (the real usage goes to
// src/limiter/reconcile.ts and src/spend/reconcile.ts). The response path is a line — forward → stream → account —
// and no stage imports one that runs before it (test/server/imports.test.ts).
import type { HttpRequest, HttpResponse } from 'uWebSockets.js'
import { Next, RequestState } from './request-state.js'
import type { WorkerPlan } from './plan.js'
import { accept } from './stages/accept.js'
import { route } from './stages/route.js'
import { identify, permitModel } from './stages/identify.js'
import { estimate } from './stages/estimate.js'
import { selectModel } from './stages/model.js'
import { limit } from './stages/limit.js'
import { admit } from './stages/admit.js'
import { cache } from './stages/cache.js'
import { forward } from './stages/forward.js'
import { applySplit } from '../traffic/split.js'
import { collectBody, hasBody, StreamingBody } from './body.js'

export function handleRequest(res: HttpResponse, req: HttpRequest, plan: WorkerPlan): void {
  const s = new RequestState(res, plan)
  if (accept(s, req) !== Next.CONTINUE) return
  if (route(s) !== Next.CONTINUE) return
  const who = identify(s, afterIdentify)
  if (who === Next.PENDING) return takeBody(s)
  if (who !== Next.CONTINUE) return
  // LLM routes read the whole body first: the estimate needs the prompt. Others stream it through forward.
  if (s.route!.readsBody) collectBody(s, afterBody)
  else afterBody(s)
}

// identify is verifying a new JWT: uWS hands the body over only to an onData set in this tick, so it is taken now
// (collected, or held by a StreamingBody that pauses the client) and the request goes on once both are done
function takeBody(s: RequestState): void {
  if (s.route!.readsBody) collectBody(s, bodyWhileIdentifying)
  else if (hasBody(s)) s.streamBody = new StreamingBody(s)
}

function bodyWhileIdentifying(s: RequestState): void {
  if (!s.identifying) afterBody(s)
}

function afterIdentify(s: RequestState): void {
  if (!s.route!.readsBody || s.body !== null) afterBody(s)
}

function afterBody(s: RequestState): void {
  // a models route picks its upstream by the request's model; any other route may split by weight. The split needs
  // the identity (sticky by key or org) and comes before the estimate and the limits (per: upstream)
  if (s.route!.models !== null) {
    if (selectModel(s) !== Next.CONTINUE) return
  } else if (s.route!.split !== null) applySplit(s, s.route!.split)
  if (estimate(s, afterEstimate) !== Next.CONTINUE) return
  afterEstimate(s)
}

function afterEstimate(s: RequestState): void {
  if (s.keyModels !== null && permitModel(s) !== Next.CONTINUE) return
  if (limit(s, afterLimit) !== Next.CONTINUE) return
  afterLimit(s)
}

function afterLimit(s: RequestState): void {
  if (admit(s) !== Next.CONTINUE) return
  if (cache(s, forward) !== Next.CONTINUE) return
  forward(s) // → stages/stream.ts relays the response → stages/account.ts when it ends
}
