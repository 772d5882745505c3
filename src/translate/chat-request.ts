// What an OpenAI chat completions request says, read once for every translation: its messages with their parts
// checked, tools, and the sampling fields. Anything a target cannot express is refused by the target's translator
// naming the field (`Untranslatable`), never dropped.

/** A refused request: the field (JSON path as the client wrote it) and why. */
export class Untranslatable {
  readonly field: string
  readonly why: string
  constructor(field: string, why: string) {
    this.field = field
    this.why = why
  }

  get message(): string {
    return `${this.field}: ${this.why}`
  }
}

export type Part =
  | { kind: 'text'; text: string }
  | { kind: 'image'; url: string; /** data: URLs split */ mediaType: string; data: string }

export interface ToolCall {
  id: string
  name: string
  /** the arguments as the client sent them (a JSON string) and parsed */
  arguments: string
  input: unknown
}

export type Message =
  | { role: 'system'; text: string }
  | { role: 'user'; parts: Part[] }
  | { role: 'assistant'; parts: Part[]; toolCalls: ToolCall[] }
  | { role: 'tool'; toolCallId: string; text: string }

export interface Tool {
  name: string
  description: string | undefined
  parameters: Record<string, unknown> | undefined
}

export type ToolChoice = { kind: 'auto' | 'none' | 'required' } | { kind: 'function'; name: string }

export interface ChatRequest {
  messages: Message[]
  maxTokens: number
  temperature: number | undefined
  topP: number | undefined
  stop: string[] | undefined
  stream: boolean
  includeUsage: boolean
  tools: Tool[]
  toolChoice: ToolChoice | undefined
  parallelToolCalls: boolean | undefined
  /** 'text' | 'json_object' | 'json_schema' */
  responseFormat: string
  jsonSchema: Record<string, unknown> | undefined
  n: number
  seed: number | undefined
  presencePenalty: number | undefined
  frequencyPenalty: number | undefined
  user: string | undefined
}

/** Fields read below; any other top-level field is refused by name (a target that cannot honour it would drop it). */
const KNOWN = new Set([
  'model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'stop', 'stream', 'stream_options',
  'tools', 'tool_choice', 'parallel_tool_calls', 'response_format', 'n', 'seed', 'presence_penalty', 'frequency_penalty',
  'user', 'logprobs', 'store',
])

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function optNum(b: Record<string, unknown>, k: string): number | undefined | Untranslatable {
  const v = b[k]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v)) return new Untranslatable(k, 'expected a number')
  return v
}

/** Read a chat completions body; `defaultMax` is the target's max output when the client sets none. */
export function readChatRequest(b: Record<string, unknown>, defaultMax: number): ChatRequest | Untranslatable {
  for (const k in b) {
    if (!KNOWN.has(k)) return new Untranslatable(k, 'not supported when the model is served by a non-OpenAI provider')
  }
  if (b.logprobs === true) return new Untranslatable('logprobs', 'not available from this provider')
  if (b.store === true) return new Untranslatable('store', 'stored completions are OpenAI\'s own')
  if (!Array.isArray(b.messages) || b.messages.length === 0) return new Untranslatable('messages', 'expected a non-empty array')
  const messages: Message[] = []
  for (let i = 0; i < b.messages.length; i++) {
    const m = readMessage(b.messages[i], `messages[${i}]`)
    if (m instanceof Untranslatable) return m
    messages.push(m)
  }
  const nums: Record<string, number | undefined> = {}
  for (const k of ['max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'n', 'seed', 'presence_penalty', 'frequency_penalty']) {
    const v = optNum(b, k)
    if (v instanceof Untranslatable) return v
    nums[k] = v
  }
  let stop: string[] | undefined
  if (typeof b.stop === 'string') stop = [b.stop]
  else if (Array.isArray(b.stop)) {
    if (!b.stop.every((x) => typeof x === 'string')) return new Untranslatable('stop', 'expected strings')
    stop = b.stop as string[]
  } else if (b.stop !== undefined && b.stop !== null) return new Untranslatable('stop', 'expected a string or an array of strings')

  const tools: Tool[] = []
  if (b.tools !== undefined && b.tools !== null) {
    if (!Array.isArray(b.tools)) return new Untranslatable('tools', 'expected an array')
    for (let i = 0; i < b.tools.length; i++) {
      const t = b.tools[i]
      if (!isObj(t) || t.type !== 'function' || !isObj(t.function) || typeof t.function.name !== 'string') {
        return new Untranslatable(`tools[${i}]`, 'only {type: "function", function: {name, description, parameters}} tools translate')
      }
      const f = t.function
      if (f.parameters !== undefined && !isObj(f.parameters)) return new Untranslatable(`tools[${i}].function.parameters`, 'expected a JSON Schema object')
      tools.push({ name: f.name as string, description: typeof f.description === 'string' ? f.description : undefined, parameters: f.parameters as Record<string, unknown> | undefined })
    }
  }
  let toolChoice: ToolChoice | undefined
  const tc = b.tool_choice
  if (tc === 'auto' || tc === 'none' || tc === 'required') toolChoice = { kind: tc }
  else if (isObj(tc) && tc.type === 'function' && isObj(tc.function) && typeof tc.function.name === 'string') toolChoice = { kind: 'function', name: tc.function.name }
  else if (tc !== undefined && tc !== null) return new Untranslatable('tool_choice', 'expected auto, none, required or {type: "function", function: {name}}')

  let responseFormat = 'text'
  let jsonSchema: Record<string, unknown> | undefined
  if (b.response_format !== undefined && b.response_format !== null) {
    const rf = b.response_format
    if (!isObj(rf) || typeof rf.type !== 'string' || !['text', 'json_object', 'json_schema'].includes(rf.type)) {
      return new Untranslatable('response_format', 'expected {type: text | json_object | json_schema}')
    }
    responseFormat = rf.type
    if (rf.type === 'json_schema') {
      if (!isObj(rf.json_schema) || !isObj(rf.json_schema.schema)) return new Untranslatable('response_format.json_schema.schema', 'expected a JSON Schema object')
      jsonSchema = rf.json_schema.schema
    }
  }
  const so = b.stream_options
  const max = nums.max_completion_tokens ?? nums.max_tokens
  return {
    messages,
    maxTokens: max !== undefined ? Math.floor(max) : defaultMax,
    temperature: nums.temperature,
    topP: nums.top_p,
    stop,
    stream: b.stream === true,
    includeUsage: b.stream === true && isObj(so) && so.include_usage === true,
    tools,
    toolChoice,
    parallelToolCalls: typeof b.parallel_tool_calls === 'boolean' ? b.parallel_tool_calls : undefined,
    responseFormat,
    jsonSchema,
    n: nums.n ?? 1,
    seed: nums.seed,
    presencePenalty: nums.presence_penalty,
    frequencyPenalty: nums.frequency_penalty,
    user: typeof b.user === 'string' ? b.user : undefined,
  }
}

function readMessage(m: unknown, at: string): Message | Untranslatable {
  if (!isObj(m)) return new Untranslatable(at, 'expected a message object')
  switch (m.role) {
    case 'system':
    case 'developer': {
      const parts = readParts(m.content, `${at}.content`, false)
      if (parts instanceof Untranslatable) return parts
      return { role: 'system', text: parts.map((p) => (p.kind === 'text' ? p.text : '')).join('') }
    }
    case 'user': {
      const parts = readParts(m.content, `${at}.content`, true)
      if (parts instanceof Untranslatable) return parts
      return { role: 'user', parts }
    }
    case 'assistant': {
      const parts = m.content === null || m.content === undefined ? [] : readParts(m.content, `${at}.content`, false)
      if (parts instanceof Untranslatable) return parts
      const toolCalls: ToolCall[] = []
      if (Array.isArray(m.tool_calls)) {
        for (let j = 0; j < m.tool_calls.length; j++) {
          const c = m.tool_calls[j]
          const cat = `${at}.tool_calls[${j}]`
          if (!isObj(c) || !isObj(c.function) || typeof c.function.name !== 'string' || typeof c.id !== 'string') {
            return new Untranslatable(cat, 'expected {id, type: "function", function: {name, arguments}}')
          }
          const args = typeof c.function.arguments === 'string' ? c.function.arguments : ''
          let input: unknown = {}
          if (args !== '') {
            try {
              input = JSON.parse(args)
            } catch {
              return new Untranslatable(`${cat}.function.arguments`, 'is not valid JSON, and this provider takes tool input as a JSON object')
            }
          }
          toolCalls.push({ id: c.id, name: c.function.name, arguments: args, input })
        }
      } else if (m.tool_calls !== undefined && m.tool_calls !== null) return new Untranslatable(`${at}.tool_calls`, 'expected an array')
      if (m.function_call !== undefined && m.function_call !== null) return new Untranslatable(`${at}.function_call`, 'the deprecated function_call does not translate: use tool_calls')
      return { role: 'assistant', parts, toolCalls }
    }
    case 'tool': {
      if (typeof m.tool_call_id !== 'string') return new Untranslatable(`${at}.tool_call_id`, 'expected a string')
      const parts = readParts(m.content, `${at}.content`, false)
      if (parts instanceof Untranslatable) return parts
      return { role: 'tool', toolCallId: m.tool_call_id, text: parts.map((p) => (p.kind === 'text' ? p.text : '')).join('') }
    }
    default:
      return new Untranslatable(`${at}.role`, `role ${JSON.stringify(m.role)} does not translate (system, developer, user, assistant, tool do)`)
  }
}

function readParts(content: unknown, at: string, images: boolean): Part[] | Untranslatable {
  if (typeof content === 'string') return [{ kind: 'text', text: content }]
  if (!Array.isArray(content)) return new Untranslatable(at, 'expected a string or an array of content parts')
  const parts: Part[] = []
  for (let j = 0; j < content.length; j++) {
    const p = content[j]
    const pat = `${at}[${j}]`
    if (!isObj(p)) return new Untranslatable(pat, 'expected a content part')
    if (p.type === 'text' && typeof p.text === 'string') parts.push({ kind: 'text', text: p.text })
    else if (p.type === 'image_url' && images) {
      const u = isObj(p.image_url) ? p.image_url.url : p.image_url
      if (typeof u !== 'string') return new Untranslatable(`${pat}.image_url.url`, 'expected a URL string')
      const data = /^data:([^;,]+);base64,(.*)$/s.exec(u)
      parts.push(data !== null ? { kind: 'image', url: '', mediaType: data[1], data: data[2] } : { kind: 'image', url: u, mediaType: '', data: '' })
    } else return new Untranslatable(`${pat}.type`, `content part ${JSON.stringify(p.type)} does not translate here (text${images ? ', image_url' : ''} do)`)
  }
  return parts
}
