// What a request asks of an LLM, read from its JSON body: the prompt text, the message count, the requested
// maximum output and the streaming flags. Pure and total: an unexpected shape yields empty fields, never a throw.
import { countTokens } from './tokenizer.js'

/** The API a request speaks, decided from the upstream's provider and the request path. */
export type ApiShape =
  | 'openai-chat'
  | 'openai-completions'
  | 'openai-embeddings'
  | 'openai-responses'
  | 'gemini'
  | 'gemini-embed'
  | 'qwen-native'
  | 'anthropic-messages'
  | 'other'

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

/**
 * Paths end as the providers name them: OpenAI `/v1/chat/completions`, Azure OpenAI
 * `/openai/deployments/{deployment}/chat/completions`, any OpenAI-compatible server's `…/chat/completions`. What is
 * not generation or embeddings (model lists, `countTokens`, `/messages/count_tokens`, a stored response) is `other`:
 * forwarded and limited by requests, never charged tokens.
 */
export function shapeOf(provider: string, path: string): ApiShape {
  switch (provider) {
    case 'openai':
    case 'qwen':
      if (path.includes('/api/v1/services/aigc/')) return 'qwen-native'
      return openaiShape(path)
    case 'gemini':
      if (path.includes(':generateContent') || path.includes(':streamGenerateContent')) return 'gemini'
      if (path.includes(':embedContent') || path.includes(':batchEmbedContents')) return 'gemini-embed'
      // Gemini's OpenAI-compatible endpoint (/v1beta/openai/…) speaks OpenAI's shapes
      return path.includes('/openai/') ? openaiShape(path) : 'other'
    case 'anthropic':
      return path.endsWith('/messages') ? 'anthropic-messages' : 'other'
    default:
      return 'other'
  }
}

function openaiShape(path: string): ApiShape {
  if (path.endsWith('/chat/completions')) return 'openai-chat'
  if (path.endsWith('/embeddings')) return 'openai-embeddings'
  if (path.endsWith('/completions')) return 'openai-completions'
  if (path.endsWith('/responses')) return 'openai-responses'
  return 'other'
}

/** Azure OpenAI names the deployment in the path (`/openai/deployments/{deployment}/…`), often with no model in the body. */
export function azureDeployment(path: string): string {
  const m = /\/deployments\/([^/?]+)\//.exec(path)
  return m ? m[1] : ''
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

/**
 * Anthropic's content: a string, or blocks — text, tool_use (its input is JSON the model wrote), tool_result (a
 * string or blocks again); images and documents are counted by the upstream only.
 */
function blocksText(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  let s = ''
  for (const b of content) {
    if (!b || typeof b !== 'object') continue
    const block = b as Record<string, unknown>
    if (typeof block.text === 'string') s += block.text
    else if (block.type === 'tool_use' && block.input !== undefined) s += JSON.stringify(block.input)
    else if (block.type === 'tool_result') s += blocksText(block.content)
  }
  return s
}

/**
 * The Responses API's `input`: a string, or items — messages whose content is a string or parts (`input_text`,
 * `output_text`), function calls (arguments) and their outputs.
 */
function responsesInput(input: unknown): { text: string; n: number } {
  if (typeof input === 'string') return { text: input, n: 1 }
  if (!Array.isArray(input)) return { text: '', n: 0 }
  let text = ''
  for (const it of input) {
    if (!it || typeof it !== 'object') continue
    const item = it as Record<string, unknown>
    if (item.content !== undefined) text += contentText(item.content)
    if (typeof item.arguments === 'string') text += item.arguments
    if (typeof item.output === 'string') text += item.output
  }
  return { text, n: input.length }
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
      info.model = typeof b.model === 'string' ? b.model : azureDeployment(path)
      return info
    }
    case 'openai-completions': {
      info.text = Array.isArray(b.prompt) ? b.prompt.filter((x: unknown) => typeof x === 'string').join('') : contentText(b.prompt)
      info.maxOutput = num(b.max_tokens)
      info.stream = b.stream === true
      info.includeUsage = b.stream_options?.include_usage === true
      info.model = typeof b.model === 'string' ? b.model : azureDeployment(path)
      return info
    }
    case 'openai-embeddings': {
      info.text = Array.isArray(b.input) ? b.input.filter((x: unknown) => typeof x === 'string').join('') : contentText(b.input)
      info.maxOutput = 0
      info.model = typeof b.model === 'string' ? b.model : azureDeployment(path)
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
    case 'openai-responses': {
      const m = responsesInput(b.input)
      info.text = (typeof b.instructions === 'string' ? b.instructions : '') + m.text + toolsText(b.tools)
      info.messages = m.n
      info.maxOutput = num(b.max_output_tokens)
      info.stream = b.stream === true
      info.model = typeof b.model === 'string' ? b.model : ''
      return info
    }
    case 'anthropic-messages': {
      let text = blocksText(b.system)
      const msgs = Array.isArray(b.messages) ? b.messages : []
      for (const m of msgs) if (m && typeof m === 'object') text += blocksText((m as { content?: unknown }).content)
      info.text = text + toolsText(b.tools)
      info.messages = msgs.length
      info.maxOutput = num(b.max_tokens)
      info.stream = b.stream === true
      info.model = typeof b.model === 'string' ? b.model : ''
      return info
    }
    case 'gemini-embed': {
      const reqs = Array.isArray(b.requests) ? b.requests : [b]
      let text = ''
      for (const r of reqs) if (r && typeof r === 'object') text += contentText((r as { content?: { parts?: unknown } }).content?.parts)
      info.text = text
      info.maxOutput = 0
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

/** Tool definitions are sent to the model as text: their JSON is a fair upper-bound proxy for what it reads. */
function toolsText(tools: unknown): string {
  return Array.isArray(tools) && tools.length > 0 ? JSON.stringify(tools) : ''
}

/** Prompt tokens as the stub reports them and the estimator pre-charges them. */
export function promptTokens(info: PromptInfo): number {
  const framing = info.messages > 0 ? info.messages * PER_MESSAGE_TOKENS + REPLY_PRIMER_TOKENS : 0
  return countTokens(info.text) + framing
}
