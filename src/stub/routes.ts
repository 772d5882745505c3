// The stub's URL space: the real providers' paths, exactly, plus /__stub/* helpers. Resolved once per request
// from a Map (exact paths) and two prefix checks (Gemini's `models/{model}:{action}`, OpenAI's `models/{id}`).
import type { ErrorFamily } from './provider-errors.js'

export type StubProvider = 'openai' | 'gemini' | 'qwen' | 'anthropic'

export type RouteKind =
  | 'openai-chat'
  | 'openai-completions'
  | 'openai-embeddings'
  | 'openai-responses'
  | 'openai-models'
  | 'anthropic-messages'
  | 'qwen-chat'
  | 'qwen-embeddings'
  | 'qwen-models'
  | 'qwen-native'
  | 'gemini'
  | 'gemini-models'
  | 'bytes'
  | 'echo'
  | 'health'
  | 'not-found'

export interface Route {
  readonly kind: RouteKind
  /** the provider that serves it; null: served whatever the stub's provider option */
  readonly provider: StubProvider | null
  readonly family: ErrorFamily
  /** null: any method */
  readonly method: 'GET' | 'POST' | null
  /** the body is a JSON request to parse */
  readonly json: boolean
}

function route(kind: RouteKind, provider: StubProvider | null, family: ErrorFamily, method: 'GET' | 'POST' | null): Route {
  return { kind, provider, family, method, json: method === 'POST' }
}

const EXACT = new Map<string, Route>([
  ['/v1/chat/completions', route('openai-chat', 'openai', 'openai', 'POST')],
  ['/v1/completions', route('openai-completions', 'openai', 'openai', 'POST')],
  ['/v1/embeddings', route('openai-embeddings', 'openai', 'openai', 'POST')],
  ['/v1/responses', route('openai-responses', 'openai', 'openai', 'POST')],
  ['/v1/models', route('openai-models', 'openai', 'openai', 'GET')],
  ['/compatible-mode/v1/chat/completions', route('qwen-chat', 'qwen', 'qwen-compat', 'POST')],
  ['/compatible-mode/v1/embeddings', route('qwen-embeddings', 'qwen', 'qwen-compat', 'POST')],
  ['/compatible-mode/v1/models', route('qwen-models', 'qwen', 'qwen-compat', 'GET')],
  ['/api/v1/services/aigc/text-generation/generation', route('qwen-native', 'qwen', 'qwen', 'POST')],
  ['/v1beta/models', route('gemini-models', 'gemini', 'gemini', 'GET')],
  ['/v1/messages', route('anthropic-messages', 'anthropic', 'anthropic', 'POST')],
  ['/__stub/bytes', route('bytes', null, 'openai', 'GET')],
  ['/__stub/echo', route('echo', null, 'openai', null)],
  ['/__stub/health', route('health', null, 'openai', 'GET')],
])

export const NOT_FOUND = route('not-found', null, 'openai', null)
const GEMINI = route('gemini', 'gemini', 'gemini', 'POST')
const OPENAI_MODEL = route('openai-models', 'openai', 'openai', 'GET')
const QWEN_MODEL = route('qwen-models', 'qwen', 'qwen-compat', 'GET')

const GEMINI_PREFIXES = ['/v1beta/models/', '/v1/models/', '/v1alpha/models/'] as const
const OPENAI_MODEL_PREFIX = '/v1/models/'
const QWEN_MODEL_PREFIX = '/compatible-mode/v1/models/'

/** A resolved route and its path argument (a Gemini action, or a model id; '' when none). */
export interface Resolved {
  route: Route
  arg: string
}

/** Fills `out` (the exchange's own record: no allocation per request). */
export function resolveRoute(path: string, provider: StubProvider | 'all', out: Resolved): void {
  out.arg = ''
  let r = EXACT.get(path)
  if (r === undefined) r = prefixRoute(path, out)
  out.route = r.provider === null || provider === 'all' || r.provider === provider ? r : NOT_FOUND
}

function prefixRoute(path: string, out: Resolved): Route {
  for (const prefix of GEMINI_PREFIXES) {
    if (!path.startsWith(prefix)) continue
    // the last colon: a fine-tuned OpenAI id (`/v1/models/ft:gpt-4o-mini:org:x`) has colons too
    const colon = path.lastIndexOf(':')
    const action = colon < prefix.length ? '' : path.slice(colon + 1)
    if (action === 'generateContent' || action === 'streamGenerateContent' || action === 'countTokens') {
      out.arg = action
      return GEMINI
    }
    break
  }
  if (path.startsWith(OPENAI_MODEL_PREFIX) && path.length > OPENAI_MODEL_PREFIX.length) {
    out.arg = path.slice(OPENAI_MODEL_PREFIX.length)
    return OPENAI_MODEL
  }
  if (path.startsWith(QWEN_MODEL_PREFIX) && path.length > QWEN_MODEL_PREFIX.length) {
    out.arg = path.slice(QWEN_MODEL_PREFIX.length)
    return QWEN_MODEL
  }
  return NOT_FOUND
}
