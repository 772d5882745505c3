// Error bodies as each provider shapes them, so the proxy's error passthrough and retry logic meet the real
// formats: OpenAI `{error:{message,type,param,code}}`, Qwen compatible-mode the same plus `request_id`,
// DashScope native `{code,message,request_id}`, Gemini `{error:{code,message,status}}` (google.rpc.Status),
// Anthropic `{type:"error",error:{type,message},request_id}`.

/** Which provider's error shape a route answers with. */
export type ErrorFamily = 'openai' | 'qwen-compat' | 'qwen' | 'gemini' | 'anthropic'

interface Known {
  message: string
  openaiType: string
  openaiCode: string | null
  qwenCode: string
  geminiStatus: string
}

const KNOWN: Record<number, Known> = {
  400: { message: 'Invalid request.', openaiType: 'invalid_request_error', openaiCode: null, qwenCode: 'InvalidParameter', geminiStatus: 'INVALID_ARGUMENT' },
  401: { message: 'Incorrect API key provided.', openaiType: 'invalid_request_error', openaiCode: 'invalid_api_key', qwenCode: 'InvalidApiKey', geminiStatus: 'UNAUTHENTICATED' },
  403: { message: 'Permission denied.', openaiType: 'invalid_request_error', openaiCode: null, qwenCode: 'AccessDenied', geminiStatus: 'PERMISSION_DENIED' },
  404: { message: 'Not found.', openaiType: 'invalid_request_error', openaiCode: 'unknown_url', qwenCode: 'NotFound', geminiStatus: 'NOT_FOUND' },
  413: { message: 'Request body too large.', openaiType: 'invalid_request_error', openaiCode: null, qwenCode: 'InvalidParameter', geminiStatus: 'INVALID_ARGUMENT' },
  429: { message: 'Rate limit reached for requests (stub). Please try again in 1s.', openaiType: 'requests', openaiCode: 'rate_limit_exceeded', qwenCode: 'Throttling.RateQuota', geminiStatus: 'RESOURCE_EXHAUSTED' },
  500: { message: 'The server had an error while processing your request.', openaiType: 'server_error', openaiCode: null, qwenCode: 'InternalError', geminiStatus: 'INTERNAL' },
  502: { message: 'Bad gateway.', openaiType: 'server_error', openaiCode: null, qwenCode: 'InternalError', geminiStatus: 'UNAVAILABLE' },
  503: { message: 'The model is overloaded. Please try again later.', openaiType: 'server_error', openaiCode: 'overloaded', qwenCode: 'ServiceUnavailable', geminiStatus: 'UNAVAILABLE' },
  504: { message: 'Deadline exceeded.', openaiType: 'server_error', openaiCode: null, qwenCode: 'RequestTimeOut', geminiStatus: 'DEADLINE_EXCEEDED' },
  529: { message: 'Overloaded', openaiType: 'server_error', openaiCode: 'overloaded', qwenCode: 'ServiceUnavailable', geminiStatus: 'UNAVAILABLE' },
}

/** Anthropic's error types by status (its API reference, "Errors"); 529 is its "overloaded". */
function anthropicType(status: number): string {
  switch (status) {
    case 400: return 'invalid_request_error'
    case 401: return 'authentication_error'
    case 402: return 'billing_error'
    case 403: return 'permission_error'
    case 404: return 'not_found_error'
    case 413: return 'request_too_large'
    case 429: return 'rate_limit_error'
    case 503:
    case 529: return 'overloaded_error'
    case 504: return 'timeout_error'
    default: return status >= 500 ? 'api_error' : 'invalid_request_error'
  }
}

function known(status: number): Known {
  return KNOWN[status] ?? (status >= 500 ? KNOWN[500] : KNOWN[400])
}

/** Statuses a real provider sends with a retry hint; the stub always says 1 s. */
export function hasRetryAfter(status: number): boolean {
  return status === 429 || status === 503
}

/** The JSON error body `family` sends for `status`; `message` overrides the canned text. */
export function errorBody(family: ErrorFamily, status: number, requestId: string, message?: string): string {
  const k = known(status)
  const msg = message ?? k.message
  switch (family) {
    case 'openai':
      return JSON.stringify({ error: { message: msg, type: k.openaiType, param: null, code: k.openaiCode } })
    case 'qwen-compat':
      return JSON.stringify({ error: { message: msg, type: k.openaiType, param: null, code: k.openaiCode }, request_id: requestId })
    case 'qwen':
      return JSON.stringify({ code: k.qwenCode, message: msg, request_id: requestId })
    case 'gemini': {
      const error: Record<string, unknown> = { code: status, message: msg, status: k.geminiStatus }
      if (status === 429) error.details = [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '1s' }]
      return JSON.stringify({ error })
    }
    case 'anthropic':
      return JSON.stringify({ type: 'error', error: { type: anthropicType(status), message: msg }, request_id: 'req_' + requestId.replace(/-/g, '') })
  }
}
