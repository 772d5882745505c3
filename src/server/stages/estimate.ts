// Stage 4 — estimate: what the request will cost before it runs. Every request costs 1 on request limits; on LLM
// routes the prompt is tokenized (large prompts in the tokenizer pool, off this event loop) and the requested
// maximum output added, so token buckets are pre-charged with the most the request may use. The account stage
// replaces the estimate with the real usage.
import { Next, type RequestState } from '../request-state.js'
import { replyError } from '../reply.js'
import { shapeOf } from '../../llm/prompt.js'
import { estimateBound, estimateTokens, LazyPrompt, type TokenEstimate } from '../../llm/estimate.js'
import { estimateTokensAsync, POOL_THRESHOLD } from '../../llm/tokenizer-pool.js'
import { injectIncludeUsage } from '../../llm/inject.js'

export function estimate(s: RequestState, then: (s: RequestState) => void): Next {
  const route = s.route!
  if (!route.readsBody) return Next.CONTINUE
  // the upstream's provider, not the route's: a models route may have sent the request elsewhere (stages/model.ts)
  const shape = shapeOf(s.upstream!.provider, s.upstreamPath)
  s.shape = shape
  if (shape === 'other') return Next.CONTINUE
  const raw = s.body!
  let body: unknown = s.json === undefined ? null : s.json
  if (s.json === undefined && raw.length > 0) {
    try {
      body = JSON.parse(raw.toString('utf8'))
    } catch {
      return replyError(s, 'LEAKY_BAD_JSON')
    }
  }
  s.json = body
  if (shape === 'openai-chat' || shape === 'openai-completions') {
    // without include_usage an OpenAI stream reports no usage: ask for it, and strip the extra chunk on the way back
    const injected = injectIncludeUsage(body, raw)
    if (injected !== null) {
      s.body = injected
      s.stripUsage = true
    }
  }
  const headers = { dashscopeSse: headerValue(s, 'x-dashscope-sse') === 'enable' }
  const def = s.upstream!.defaultMaxTokens
  // a body above POOL_THRESHOLD is counted in the pool as before: a recount on a denial would run inline
  if (s.upstream!.promptBytes && raw.length <= POOL_THRESHOLD && boundable(s)) {
    const e = estimateBound(shape, body, s.upstreamPath, headers, def)
    apply(s, e)
    s.lazyPrompt = new LazyPrompt(e.info)
    return Next.CONTINUE
  }
  if (raw.length <= POOL_THRESHOLD) {
    apply(s, estimateTokens(shape, body, s.upstreamPath, headers, def))
    return Next.CONTINUE
  }
  estimateTokensAsync(shape, body, s.upstreamPath, headers, def).then((e) => {
    if (s.finished) return
    apply(s, e)
    then(s)
  })
  return Next.PENDING
}

function apply(s: RequestState, e: TokenEstimate): void {
  s.costTokens = e.total
  s.promptTokens = e.prompt
  s.model = e.info.model
}

// The bound is only used where a denial can be re-decided on the exact count at once (recountPrompt): local token
// limits. Budgets price the prompt and cluster limits decide in Redis, asynchronously: those routes count exactly.
function boundable(s: RequestState): boolean {
  const i = s.route!.index
  const p = s.plan
  return p.budgets.byRoute[i].length === 0 && p.budgets.clusterByRoute[i].length === 0 && p.limits.clusterByRoute[i].length === 0
}

function headerValue(s: RequestState, name: string): string {
  const h = s.headers
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1]
  return ''
}
