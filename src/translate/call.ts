// One request's exchange with a `models:` route: the choices its model resolved to (fallback order), which one is
// being tried, and how the request and the answer are translated for it. Applying a choice sets the upstream,
// path, body, API shape and model on the request state, so the stages after it (estimate, limit, forward, meter,
// account) work as for a request sent to that provider directly: limits and accounting see the real upstream's tokens.
import type { RequestState } from '../server/request-state.js'
import type { Upstream } from '../upstream/upstream.js'
import { shapeOf } from '../llm/prompt.js'
import { injectIncludeUsage } from '../llm/inject.js'
import type { CompiledChoice } from './models.js'
import { readChatRequest, Untranslatable, type ChatRequest } from './chat-request.js'
import { toAnthropic } from './anthropic-request.js'
import { toGemini } from './gemini-request.js'
import type { ResponseTranslator } from './openai-out.js'
import { AnthropicToOpenAI } from './anthropic-response.js'
import { GeminiToOpenAI } from './gemini-response.js'
import { ErrorToOpenAI } from './error-response.js'

const CHAT = '/chat/completions'
/** The Messages API version sent when neither the client nor the upstream's headers name one. */
const ANTHROPIC_VERSION = '2023-06-01'

function hasHeader(h: readonly string[], name: string): boolean {
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return true
  return false
}

export class ModelCall {
  readonly asked: string
  readonly choices: CompiledChoice<Upstream>[]
  /** the client's body, parsed */
  readonly body: Record<string, unknown>
  /** the client's body as it came: an OpenAI-shaped upstream asked for the same model gets these bytes */
  readonly raw: Buffer
  /** the client's path below the route (what an OpenAI-shaped upstream is sent) */
  readonly rel: string
  /** the client's query string: kept for OpenAI-shaped upstreams, replaced for Gemini's (alt=sse) */
  readonly query: string
  index = -1
  /** the choice being tried speaks another API: its answer is translated */
  translated = false
  /** read once, on the first choice that needs translating */
  private chat: ChatRequest | Untranslatable | null = null
  /** what was tried, in order, for the access line: "upstream/model" */
  readonly trail: string[] = []

  constructor(s: RequestState, body: Record<string, unknown>, asked: string, choices: CompiledChoice<Upstream>[]) {
    this.asked = asked
    this.choices = choices
    this.body = body
    this.raw = s.body!
    const r = s.route!
    let rel = s.url
    if (r.stripPrefix) {
      rel = s.url.slice(r.path.length)
      if (rel.charCodeAt(0) !== 47 /* / */) rel = '/' + rel
    }
    this.rel = rel
    this.query = s.query
    // Anthropic refuses a request without its API version, and an OpenAI client never sends one. Added here, before
    // the first attempt, as a client header: forward rebuilds every attempt's headers from the client's, so one
    // added at a fallback would be dropped. The other providers ignore it.
    if (!hasHeader(s.headers, 'anthropic-version')) {
      for (let i = 0; i < choices.length; i++) {
        const up = choices[i].upstream
        if (up.provider === 'anthropic' && !hasHeader(up.injected, 'anthropic-version')) {
          s.headers.push('anthropic-version', ANTHROPIC_VERSION)
          break
        }
      }
    }
  }

  hasNext(): boolean {
    return this.index + 1 < this.choices.length
  }

  /** Move to the next choice; false when it could not be applied (the client has been answered). */
  next(s: RequestState, reply: (s: RequestState, u: Untranslatable) => void): boolean {
    return this.apply(s, this.index + 1, reply)
  }

  /**
   * Point the request at choice `i`: upstream, target, path, body, shape, model. A request its API cannot express
   * is answered 400 naming the field (reply), and false returned.
   */
  apply(s: RequestState, i: number, reply: (s: RequestState, u: Untranslatable) => void): boolean {
    this.index = i
    const c = this.choices[i]
    const up = c.upstream
    const model = c.model === '' ? this.asked : c.model
    this.trail.push(`${up.name}/${model}`)
    s.upstream = up
    s.target = up.pick()
    const base = up.targets[s.target].basePath
    s.model = model
    s.stripUsage = false
    switch (up.provider) {
      case 'anthropic':
      case 'gemini': {
        if (!this.rel.endsWith(CHAT)) {
          reply(s, new Untranslatable('path', `${this.rel} is served by OpenAI-shaped providers only; ${up.provider} models answer ${CHAT}`))
          return false
        }
        if (this.chat === null) this.chat = readChatRequest(this.body, up.defaultMaxTokens)
        const chat = this.chat
        if (chat instanceof Untranslatable) {
          reply(s, chat)
          return false
        }
        const out = up.provider === 'anthropic' ? toAnthropic(chat, model) : toGemini(chat)
        if (out instanceof Untranslatable) {
          reply(s, out)
          return false
        }
        if (up.provider === 'anthropic') {
          s.upstreamPath = base + '/v1/messages'
          s.query = ''
        } else {
          s.upstreamPath = `${base}/v1beta/models/${encodeURIComponent(model)}:${chat.stream ? 'streamGenerateContent' : 'generateContent'}`
          s.query = chat.stream ? 'alt=sse' : ''
        }
        s.body = Buffer.from(JSON.stringify(out))
        s.json = out
        this.translated = true
        break
      }
      default: {
        // OpenAI-shaped (openai, qwen compatible mode, any HTTP): the client's request with the model the upstream knows
        s.upstreamPath = base + this.rel
        s.query = this.query
        let body: Record<string, unknown> = model === this.body.model ? this.body : { ...this.body, model }
        const injected = this.rel.endsWith(CHAT) ? injectIncludeUsage(body) : null
        if (injected !== null) {
          // the estimate finds include_usage set and injects nothing more; the meter strips the extra chunk
          body = JSON.parse(injected.toString('utf8')) as Record<string, unknown>
          s.stripUsage = true
        }
        s.body = body === this.body ? this.raw : Buffer.from(JSON.stringify(body))
        s.json = body
        this.translated = false
      }
    }
    s.shape = shapeOf(up.provider, s.upstreamPath)
    return true
  }

  /** The answer's translator for the choice being tried (null: it speaks OpenAI already). */
  translator(s: RequestState, status: number, sse: boolean): ResponseTranslator | null {
    if (!this.translated) return null
    if (status < 200 || status >= 300) return new ErrorToOpenAI(status)
    const chat = this.chat as ChatRequest
    const o = { stream: sse, includeUsage: chat.includeUsage, model: s.model, id: `chatcmpl-${s.requestId}`, meter: s.meter }
    return s.upstream!.provider === 'anthropic' ? new AnthropicToOpenAI(o) : new GeminiToOpenAI(o)
  }
}
