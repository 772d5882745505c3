// Stage 4 — estimate: the cost of the request before it runs (1 request; prompt + max output tokens on LLM routes).
import { Next, type RequestState } from '../request-state.js'

export function estimate(_s: RequestState, _then: (s: RequestState) => void): Next {
  return Next.CONTINUE
}
