// Every failure a user can meet, in one table: code → HTTP status, OpenAI-shaped error type, client-safe message
// and the reason label used in logs and metrics. Callers branch on `code`; between threads send `{ code, message }`.

export const ERRORS = {
  LEAKY_NO_ROUTE: { status: 404, type: 'invalid_request_error', message: 'no route matches this request' },
  LEAKY_BAD_REQUEST: { status: 400, type: 'invalid_request_error', message: 'malformed request' },
  LEAKY_BAD_PATH: { status: 400, type: 'invalid_request_error', message: 'request path refused: an encoded slash or backslash, a NUL, a backslash, a malformed escape or a ";" dot segment' },
  LEAKY_BAD_JSON: { status: 400, type: 'invalid_request_error', message: 'request body is not valid JSON' },
  LEAKY_DUPLICATE_CONTENT_LENGTH: { status: 400, type: 'invalid_request_error', message: 'duplicate Content-Length header' },
  LEAKY_BAD_TRANSFER_ENCODING: { status: 400, type: 'invalid_request_error', message: 'unsupported Transfer-Encoding (only chunked is accepted)' },
  LEAKY_BODY_TOO_LARGE: { status: 413, type: 'invalid_request_error', message: 'request body exceeds server.max_body' },
  LEAKY_HEADERS_TOO_LARGE: { status: 431, type: 'invalid_request_error', message: 'request headers exceed server.max_header' },
  LEAKY_UNAUTHORIZED: { status: 401, type: 'invalid_request_error', message: 'missing or unknown API key' },
  LEAKY_JWT_MISSING: { status: 401, type: 'invalid_request_error', message: 'missing bearer token: send a JWT as Authorization: Bearer' },
  LEAKY_JWT_MALFORMED: { status: 401, type: 'invalid_request_error', message: 'bearer token is not a well-formed JWT (compact JWS)' },
  LEAKY_JWT_TOO_LARGE: { status: 401, type: 'invalid_request_error', message: 'bearer token is larger than 8 KB' },
  LEAKY_JWT_ALG: { status: 401, type: 'invalid_request_error', message: 'JWT signing algorithm is not accepted (alg none is never accepted)' },
  LEAKY_JWT_UNKNOWN_KID: { status: 401, type: 'invalid_request_error', message: 'no key of the issuer matches the JWT (kid unknown)' },
  LEAKY_JWT_SIGNATURE: { status: 401, type: 'invalid_request_error', message: 'JWT signature does not verify' },
  LEAKY_JWT_EXPIRED: { status: 401, type: 'invalid_request_error', message: 'JWT has expired' },
  LEAKY_JWT_NOT_YET_VALID: { status: 401, type: 'invalid_request_error', message: 'JWT is not valid yet (nbf or iat in the future)' },
  LEAKY_JWT_ISSUER: { status: 401, type: 'invalid_request_error', message: 'JWT issuer is not accepted' },
  LEAKY_JWT_AUDIENCE: { status: 401, type: 'invalid_request_error', message: 'JWT audience is not accepted' },
  LEAKY_JWT_CLAIMS: { status: 401, type: 'invalid_request_error', message: 'JWT lacks a required claim or a claim has an unusable value' },
  LEAKY_JWT_KEYS_UNAVAILABLE: { status: 503, type: 'server_error', message: 'the issuer\'s signing keys (JWKS) could not be loaded yet; try again later' },
  LEAKY_KEY_EXPIRED: { status: 401, type: 'invalid_request_error', message: 'API key expired (or rotated and past its grace period)' },
  LEAKY_KEY_FORBIDDEN: { status: 403, type: 'permission_error', message: 'this API key may not use this route or model' },
  LEAKY_RATE_LIMITED: { status: 429, type: 'rate_limit_exceeded', message: 'rate limit exceeded' },
  LEAKY_BUDGET_EXCEEDED: { status: 429, type: 'rate_limit_exceeded', message: 'spend budget exceeded: the request\'s most possible cost does not fit in what is left of the window' },
  LEAKY_BUDGET_NO_PRICE: { status: 403, type: 'permission_error', message: 'the model has no price, so a spend budget on this route cannot be checked' },
  LEAKY_OVER_BURST: { status: 429, type: 'rate_limit_exceeded', message: 'request is larger than the limit\'s burst and can never be admitted' },
  LEAKY_TABLE_FULL: { status: 503, type: 'server_error', message: 'rate-limit table is full; try again later' },
  LEAKY_REDIS_UNAVAILABLE: { status: 503, type: 'server_error', message: 'a cluster-wide limit cannot be checked (Redis unavailable) and its on_error is closed; try again later' },
  LEAKY_OVERLOADED: { status: 503, type: 'server_error', message: 'proxy is at max_inflight (server, route or upstream); try again later' },
  LEAKY_UPSTREAM_CONNECT: { status: 502, type: 'upstream_error', message: 'could not connect to the upstream' },
  LEAKY_UPSTREAM_TLS: { status: 502, type: 'upstream_error', message: 'TLS to the upstream failed: its certificate did not verify for the expected host, or the handshake failed' },
  LEAKY_UPSTREAM_RESET: { status: 502, type: 'upstream_error', message: 'the upstream closed the connection' },
  LEAKY_UPSTREAM_INVALID: { status: 502, type: 'upstream_error', message: 'the upstream sent an invalid response' },
  LEAKY_UPSTREAM_TIMEOUT: { status: 504, type: 'upstream_error', message: 'the upstream did not answer in time' },
  LEAKY_UPSTREAM_UNAVAILABLE: { status: 503, type: 'upstream_error', message: 'the upstream is failing (circuit breaker open, or every target ejected or unhealthy) and no fallback could take the request; try again later' },
  LEAKY_UPSTREAM_QUOTA: { status: 429, type: 'rate_limit_exceeded', message: 'the provider account behind this upstream has no quota left until its reset (its own rate-limit headers said so) and no fallback could take the request; retry after Retry-After' },
  LEAKY_CLIENT_CLOSED: { status: 499, type: 'client_closed', message: 'the client closed the connection' },
  LEAKY_ADMIN_FORBIDDEN: { status: 403, type: 'permission_error', message: 'the admin token\'s role may not call this endpoint' },
  LEAKY_ADMIN_THROTTLED: { status: 429, type: 'rate_limit_exceeded', message: 'too many failed admin authentications from this address; try again later' },
  LEAKY_METHOD_NOT_ALLOWED: { status: 405, type: 'invalid_request_error', message: 'this admin endpoint does not take this method (see Allow)' },
  LEAKY_RELOAD_FAILED: { status: 422, type: 'invalid_request_error', message: 'reload failed: the config file is invalid; the running config stays in force' },
  LEAKY_KEY_EXISTS: { status: 409, type: 'invalid_request_error', message: 'a key with this id exists' },
  LEAKY_KEY_NOT_FOUND: { status: 404, type: 'invalid_request_error', message: 'no runtime key with this id' },
  LEAKY_KEY_READ_ONLY: { status: 409, type: 'invalid_request_error', message: 'this key comes from the config file (read-only): edit the YAML' },
  LEAKY_KEYS_DISABLED: { status: 503, type: 'server_error', message: 'runtime keys are disabled: the key store could not be opened at start (see the log)' },
  LEAKY_MODEL_NOT_FOUND: { status: 404, type: 'invalid_request_error', message: 'no model of this route\'s models table matches the request\'s model (OpenAI code model_not_found)' },
  LEAKY_UNTRANSLATABLE: { status: 400, type: 'invalid_request_error', message: 'the request uses a field the provider serving its model cannot express' },
  LEAKY_LEDGER_DISABLED: { status: 503, type: 'server_error', message: 'the usage ledger is off: not configured, or its file could not be opened at start (see the log)' },
  LEAKY_INTERNAL: { status: 500, type: 'server_error', message: 'internal proxy error' },
} as const satisfies Record<string, { status: number; type: string; message: string }>

export type ErrorCode = keyof typeof ERRORS

/** Error for the edges (config, CLI, start-up). The hot path returns codes instead of throwing. */
/**
 * Failures outside a request — config load, start-up, reload, the CLI — in one table as well. They are never
 * answered over HTTP: they end a command or a start with `leaky: <message>` on stderr (or a fatal log line) and
 * the exit code given here. LeakyError takes only the codes of these two tables.
 */
export const START_ERRORS = {
  LEAKY_CONFIG_INVALID: { exit: 1, message: 'the config does not validate' },
  LEAKY_PRICES_FILE: { exit: 1, message: 'the prices file cannot be read or does not validate' },
  LEAKY_PID_FILE: { exit: 1, message: 'the pid file or its runtime directory cannot be used' },
  LEAKY_UWS_UNAVAILABLE: { exit: 1, message: 'no uWebSockets.js build loads on this Node.js, platform and libc' },
  LEAKY_UWS_FALLBACK: { exit: 1, message: 'uWebSockets.js loaded no native binary and fell back to its pure-JS implementation' },
  LEAKY_LISTEN: { exit: 1, message: 'a listener could not bind its address' },
  LEAKY_RELOAD: { exit: 1, message: 'a worker refused the new config; the running one stays' },
  LEAKY_CLI: { exit: 1, message: 'the command cannot run as given' },
  LEAKY_WORKER_CRASHED: { exit: 70, message: 'a worker thread threw: it exits and its generation starts a replacement' },
} as const

export type StartErrorCode = keyof typeof START_ERRORS

/** Codes of the errors the proxy aborts its own upstream requests with: never shown to a client nor logged. */
export const ABORT_ERRORS = {
  LEAKY_RETRY: { message: 'response dropped: another attempt takes over' },
} as const

/** Exit codes of the CLI's commands and of the processes and threads it starts (70: EX_SOFTWARE). */
export const EXIT = { OK: 0, FAILED: 1, WORKER_CRASHED: START_ERRORS.LEAKY_WORKER_CRASHED.exit } as const

export class LeakyError extends Error {
  readonly code: ErrorCode | StartErrorCode
  constructor(code: ErrorCode | StartErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'LeakyError'
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict', 422: 'Unprocessable Entity', 413: 'Payload Too Large', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 499: 'Client Closed Request', 500: 'Internal Server Error', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
}

/** Which provider's error JSON a route answers with: clients parse errors with their own SDK's shape. */
export type ErrorShape = 'openai' | 'gemini' | 'qwen-native' | 'anthropic'

const GEMINI_STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 413: 'INVALID_ARGUMENT', 429: 'RESOURCE_EXHAUSTED',
  431: 'INVALID_ARGUMENT', 499: 'CANCELLED', 500: 'INTERNAL', 502: 'UNAVAILABLE', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
}
/** Anthropic's error types (docs: API errors), by status. */
const ANTHROPIC_TYPE: Record<number, string> = {
  400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error',
  413: 'request_too_large', 429: 'rate_limit_error', 431: 'invalid_request_error', 499: 'invalid_request_error',
  500: 'api_error', 502: 'api_error', 503: 'overloaded_error', 504: 'api_error',
}
const QWEN_CODE: Record<number, string> = {
  400: 'InvalidParameter', 401: 'InvalidApiKey', 403: 'AccessDenied', 404: 'NotFound', 413: 'InvalidParameter', 429: 'Throttling.RateQuota',
  431: 'InvalidParameter', 499: 'RequestCancelled', 500: 'InternalError', 502: 'InternalError', 503: 'ServiceUnavailable', 504: 'RequestTimeOut',
}

/** The error body in a provider's shape; our code rides along so clients and logs can branch on it. */
export function shapedErrorBody(shape: ErrorShape, code: ErrorCode, message: string = ERRORS[code].message, requestId = ''): string {
  const e = ERRORS[code]
  switch (shape) {
    case 'openai':
      return errorBody(message, e.type, code)
    case 'gemini':
      return JSON.stringify({ error: { code: e.status, message, status: GEMINI_STATUS[e.status] ?? 'UNKNOWN', reason: code } })
    case 'qwen-native':
      return JSON.stringify({ code: QWEN_CODE[e.status] ?? 'InternalError', message, request_id: requestId, leaky_code: code })
    case 'anthropic':
      return JSON.stringify({ type: 'error', error: { type: ANTHROPIC_TYPE[e.status] ?? 'api_error', message, code } })
  }
}

/** Pre-rendered per code: the uWS status line and the OpenAI-shaped body, so an error reply allocates nothing. */
export const ERROR_REPLY: Record<ErrorCode, { statusLine: string; body: string }> = Object.fromEntries(
  (Object.keys(ERRORS) as ErrorCode[]).map((code) => {
    const e = ERRORS[code]
    return [code, { statusLine: `${e.status} ${STATUS_TEXT[e.status]}`, body: errorBody(e.message, e.type, code) }]
  }),
) as Record<ErrorCode, { statusLine: string; body: string }>

export function errorBody(message: string, type: string, code: string): string {
  return JSON.stringify({ error: { message, type, code } })
}
