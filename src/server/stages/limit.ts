// Stage 5 — limit: charge every applicable bucket all-or-nothing.
import { Next, type RequestState } from '../request-state.js'

export function limit(_s: RequestState): Next {
  return Next.CONTINUE
}
