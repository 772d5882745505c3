// Stage 3½ — model (routes with `models:` only): the request's `model` picks the upstream, and the model name that
// upstream is sent, from the route's table (src/translate/models.ts); a provider that does not speak OpenAI's chat
// completions gets the request translated (src/translate/). Runs once the body is read, before the estimate, so
// the estimate, the limits and the accounting all see the real upstream's request. GET …/models lists the table.
import { Next, type RequestState } from '../request-state.js'
import { replyError, replyJson, untranslatable } from '../reply.js'
import { lookupCompiled } from '../../translate/models.js'
import { ModelCall } from '../../translate/call.js'

export function selectModel(s: RequestState): Next {
  const models = s.route!.models!
  if (s.method === 'GET' && s.url.endsWith('/models')) return replyJson(s, 200, models.listBody, null)
  const raw = s.body
  // no JSON body naming a model (model lists by id, files…): the route's own upstream, as on any route
  if (raw === null || raw.length === 0) return Next.CONTINUE
  let body: unknown
  try {
    body = JSON.parse(raw.toString('utf8'))
  } catch {
    return replyError(s, 'LEAKY_BAD_JSON')
  }
  s.json = body
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return Next.CONTINUE
  const asked = (body as Record<string, unknown>).model
  if (typeof asked !== 'string') return Next.CONTINUE
  const choices = lookupCompiled(models, asked)
  if (choices === null) {
    // OpenAI's own answer for a model it does not serve; the table itself stays unlisted
    s.errorDetail = `model ${asked}`
    return replyJson(s, 404, JSON.stringify({
      error: { message: `The model \`${asked}\` does not exist or you do not have access to it.`, type: 'invalid_request_error', param: 'model', code: 'model_not_found' },
    }), 'LEAKY_MODEL_NOT_FOUND')
  }
  const call = new ModelCall(s, body as Record<string, unknown>, asked, choices)
  s.modelCall = call
  return call.apply(s, 0, untranslatable) ? Next.CONTINUE : Next.REPLIED
}
