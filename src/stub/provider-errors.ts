// Error bodies as each provider shapes them, so the proxy's error passthrough and retry logic meet the real
// formats: OpenAI `{error:{message,type,param,code}}`, Qwen compatible-mode the same plus `request_id`,
// DashScope native `{code,message,request_id}`, Gemini `{error:{code,message,status}}` (google.rpc.Status).

/** Which provider's error shape a route answers with. */
export type ErrorFamily = 'openai' | 'qwen-compat' | 'qwen' | 'gemini'

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
  }
}
