// How a request ends on the client side, in one place: an error reply in the OpenAI error shape, a cut when the
// response had already started, or the client going away. Each path runs the account stage exactly once.
import { ERROR_REPLY, shapedErrorBody, type ErrorCode } from '../errors.js'
import { Next, type RequestState } from './request-state.js'
import { account } from './stages/account.js'
import type { Untranslatable } from '../translate/chat-request.js'

const JSON_TYPE = 'application/json'
let closeErr: Error | null = null

/**
 * Answer with the error for `code`. `close` asks uWS to close the connection after it (framing errors: the rest of
 * the connection's bytes cannot be trusted). When the response had already started, the only honest signal left is
 * to cut the connection, so the client sees a truncated response rather than a clean end.
 */
export function replyError(s: RequestState, code: ErrorCode, close = false, headers: string[] | null = null, message: string | null = null): Next {
  if (s.errorCode === null) s.errorCode = code
  if (s.finished || s.aborted) return Next.REPLIED
  s.finished = true
  const res = s.res
  if (s.headersSent) {
    res.close()
  } else {
    const r = ERROR_REPLY[code]
    s.status = Number(r.statusLine.slice(0, 3))
    const body = message === null && s.errorShape === 'openai' ? r.body : shapedErrorBody(s.errorShape, code, message ?? undefined, s.requestId)
    s.bytesOut = body.length
    res.cork(() => {
      res.writeStatus(r.statusLine).writeHeader('content-type', JSON_TYPE).writeHeader('x-request-id', s.requestId)
      if (headers !== null) for (let i = 0; i < headers.length; i += 2) res.writeHeader(headers[i], headers[i + 1])
      res.end(body, close)
    })
  }
  account(s)
  return Next.REPLIED
}

/** Answer with a ready JSON body (a stage's own answer, not a proxied one); `code` names an error for the log. */
export function replyJson(s: RequestState, status: number, body: string, code: ErrorCode | null): Next {
  if (code !== null && s.errorCode === null) s.errorCode = code
  if (s.finished || s.aborted) return Next.REPLIED
  s.finished = true
  s.status = status
  s.bytesOut = body.length
  const res = s.res
  res.cork(() => {
    res.writeStatus(status === 200 ? '200 OK' : ERROR_REPLY[code ?? 'LEAKY_INTERNAL'].statusLine).writeHeader('content-type', JSON_TYPE).writeHeader('x-request-id', s.requestId)
    res.end(body)
  })
  account(s)
  return Next.REPLIED
}

/** 400 naming the field a provider cannot express (never dropped silently): model picks, forward's next choice. */
export function untranslatable(s: RequestState, u: Untranslatable): void {
  s.errorDetail = u.message
  replyError(s, 'LEAKY_UNTRANSLATABLE', false, null, `${u.message} (model served by ${s.upstream!.provider})`)
}

/** uWS onAborted: the client is gone; stop the upstream at once (it is logged as 499). */
export function clientAborted(s: RequestState): void {
  s.aborted = true
  if (s.finished) return
  s.finished = true
  if (s.errorCode === null) s.errorCode = 'LEAKY_CLIENT_CLOSED'
  if (s.controller !== null && !s.controller.aborted) {
    s.controller.abort((closeErr ??= Object.assign(new Error('client closed the connection'), { code: 'LEAKY_CLIENT_CLOSED' })))
  }
  account(s)
}
