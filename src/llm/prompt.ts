// What a request asks of an LLM, read from its JSON body: the prompt text, the message count, the requested
// maximum output and the streaming flags. Pure and total: an unexpected shape yields empty fields, never a throw.
import { countTokens } from './tokenizer.js'

/** The API a request speaks, decided from the upstream's provider and the request path. */
export type ApiShape = 'openai-chat' | 'openai-completions' | 'openai-embeddings' | 'gemini' | 'qwen-native' | 'other'

export interface PromptInfo {
  text: string
  /** chat messages (or Gemini contents); each costs a fixed framing overhead */
  messages: number
  /** requested maximum output tokens, or -1 when the client gave none */
  maxOutput: number
  stream: boolean
  /** OpenAI: the client itself asked for stream_options.include_usage */
  includeUsage: boolean
  model: string
}

/** Tokens every chat message costs beyond its text, and the reply primer: OpenAI's documented framing. */
export const PER_MESSAGE_TOKENS = 3
export const REPLY_PRIMER_TOKENS = 3

export function shapeOf(provider: string, path: string): ApiShape {
  switch (provider) {
    case 'openai':
    case 'qwen':
      if (path.includes('/api/v1/services/aigc/')) return 'qwen-native'
      if (path.endsWith('/chat/completions')) return 'openai-chat'
      if (path.endsWith('/embeddings')) return 'openai-embeddings'
      if (path.endsWith('/completions')) return 'openai-completions'
      return 'other'
    case 'gemini':
      return path.includes(':generateContent') || path.includes(':streamGenerateContent') ? 'gemini' : 'other'
    default:
      return 'other'
  }
}

/** Gemini puts the model in the path (`models/{model}:generateContent`). */
export function geminiModelFromPath(path: string): string {
  const m = /models\/([^/:?]+)/.exec(path)
  return m ? m[1] : ''
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) {
    let s = ''
    for (const part of content) {
      if (typeof part === 'string') s += part
      else if (part && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') s += (part as { text: string }).text
    }
    return s
  }
  return ''
}

function messagesText(messages: unknown): { text: string; n: number } {
  if (!Array.isArray(messages)) return { text: '', n: 0 }
  let text = ''
  for (const m of messages) {
    if (!m || typeof m !== 'object') continue
    const msg = m as { content?: unknown; parts?: unknown }
    text += contentText(msg.content ?? msg.parts)
  }
  return { text, n: messages.length }
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : -1
}

export function readPrompt(shape: ApiShape, body: unknown, path = ''): PromptInfo {
  const info: PromptInfo = { text: '', messages: 0, maxOutput: -1, stream: false, includeUsage: false, model: '' }
  if (!body || typeof body !== 'object') return info
  const b = body as Record<string, any>
  switch (shape) {
    case 'openai-chat': {
      const m = messagesText(b.messages)
      info.text = m.text
      info.messages = m.n
      info.maxOutput = num(b.max_completion_tokens) >= 0 ? num(b.max_completion_tokens) : num(b.max_tokens)
      info.stream = b.stream === true
      info.includeUsage = b.stream_options?.include_usage === true
      info.model = typeof b.model === 'string' ? b.model : ''
      return info
    }
    case 'openai-completions': {
      info.text = Array.isArray(b.prompt) ? b.prompt.filter((x: unknown) => typeof x === 'string').join('') : contentText(b.prompt)
      info.maxOutput = num(b.max_tokens)
      info.stream = b.stream === true
      info.includeUsage = b.stream_options?.include_usage === true
      info.model = typeof b.model === 'string' ? b.model : ''
      return info
    }
    case 'openai-embeddings': {
      info.text = Array.isArray(b.input) ? b.input.filter((x: unknown) => typeof x === 'string').join('') : contentText(b.input)
      info.maxOutput = 0
      info.model = typeof b.model === 'string' ? b.model : ''
      return info
    }
    case 'gemini': {
      const m = messagesText(b.contents)
      const sys = b.systemInstruction ?? b.system_instruction
      info.text = (sys ? contentText(sys.parts) : '') + m.text
      info.messages = m.n
      info.maxOutput = num(b.generationConfig?.maxOutputTokens)
      info.stream = path.includes(':streamGenerateContent')
      info.model = geminiModelFromPath(path)
      return info
    }
    case 'qwen-native': {
      const input = b.input ?? {}
      if (Array.isArray(input.messages)) {
        const m = messagesText(input.messages)
        info.text = m.text
        info.messages = m.n
      } else {
        info.text = contentText(input.prompt)
      }
      info.maxOutput = num(b.parameters?.max_tokens)
      info.model = typeof b.model === 'string' ? b.model : ''
      return info
    }
    case 'other':
      return info
  }
}

/** Prompt tokens as the stub reports them and the estimator pre-charges them. */
export function promptTokens(info: PromptInfo): number {
  const framing = info.messages > 0 ? info.messages * PER_MESSAGE_TOKENS + REPLY_PRIMER_TOKENS : 0
  return countTokens(info.text) + framing
}
