// OpenAI's wire format (and Qwen's compatible mode, which copies it): chat completions, legacy completions,
// embeddings and the model list, as JSON or as SSE `data: {chunk}\n\n` … `data: [DONE]\n\n`.
// Responses are concatenations of prebuilt fragments: a stub that is the upstream of a throughput benchmark
// must not spend its core on JSON.stringify of whole objects.
import { readPrompt } from '../llm/prompt.js'
import { countPrompt, Generation } from './generation.js'
import type { Exchange } from './exchange.js'
import { base62 } from './ids.js'
import { Rng, hashText, mixSeed } from './prng.js'

export type OpenAIFlavor = 'openai' | 'qwen'

const SSE = 'text/event-stream; charset=utf-8'
const DONE = 'data: [DONE]\n\n'
const CHAT_MODEL = { openai: 'gpt-4o-mini', qwen: 'qwen-plus' } as const
/** what follows `"model":…,` in every chat object: OpenAI stamps a tier and fingerprint, Qwen a null fingerprint */
const STAMP = { openai: '"service_tier":"default","system_fingerprint":"fp_stub",', qwen: '"system_fingerprint":null,' } as const

function usage(g: Generation, flavor: OpenAIFlavor): string {
  let s = '{"prompt_tokens":' + g.prompt + ',"completion_tokens":' + g.output + ',"total_tokens":' + g.total
  if (flavor === 'openai') {
    s += ',"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":' +
      g.thoughts + ',"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
  } else {
    s += ',"prompt_tokens_details":{"cached_tokens":0}'
    if (g.thoughts > 0) s += ',"completion_tokens_details":{"reasoning_tokens":' + g.thoughts + '}'
    s += '}'
  }
  return s
}

function finish(g: Generation): string {
  return g.limited ? 'length' : 'stop'
}

export function chat(ex: Exchange, body: unknown, flavor: OpenAIFlavor): void {
  const info = readPrompt('openai-chat', body, ex.path)
  const g = new Generation(ex, info, CHAT_MODEL[flavor])
  const id = 'chatcmpl-' + base62(g.ids, 29)
  const model = JSON.stringify(g.model)
  const c = g.completion
  if (!info.stream) {
    ex.json(
      '{"id":"' + id + '","object":"chat.completion","created":' + g.created + ',"model":' + model +
        ',"choices":[{"index":0,"message":{"role":"assistant","content":"' + c.text +
        '","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"' + finish(g) + '"}],"usage":' +
        usage(g, flavor) + ',' + STAMP[flavor].slice(0, -1) + '}',
      c.tokens,
    )
    return
  }
  const head = 'data: {"id":"' + id + '","object":"chat.completion.chunk","created":' + g.created + ',"model":' + model +
    ',' + STAMP[flavor] + '"choices":[{"index":0,"delta":'
  // OpenAI puts "usage":null on every chunk once the client asked for usage, and sends usage alone at the end
  const tail = ',"logprobs":null,"finish_reason":null}]' + (info.includeUsage ? ',"usage":null}\n\n' : '}\n\n')
  ex.stream(SSE)
  ex.beat(head + '{"role":"assistant","content":"","refusal":null}' + tail, 0)
  const pieces = c.pieces
  for (let i = 0; i < pieces.length; i++) {
    const ev = head + '{"content":"' + pieces[i] + '"}' + tail
    if (i === 0) ex.append(ev)
    else ex.beat(ev, 1)
  }
  ex.append(head + '{},"logprobs":null,"finish_reason":"' + finish(g) + '"}]' + (info.includeUsage ? ',"usage":null}\n\n' : '}\n\n'))
  if (info.includeUsage) {
    ex.append('data: {"id":"' + id + '","object":"chat.completion.chunk","created":' + g.created + ',"model":' + model +
      ',' + STAMP[flavor] + '"choices":[],"usage":' + usage(g, flavor) + '}\n\n')
  }
  ex.append(DONE)
}

/** The legacy `/v1/completions` API: same text, `choices[].text`, object "text_completion". */
export function completions(ex: Exchange, body: unknown): void {
  const info = readPrompt('openai-completions', body, ex.path)
  const g = new Generation(ex, info, 'gpt-3.5-turbo-instruct')
  const id = 'cmpl-' + base62(g.ids, 29)
  const model = JSON.stringify(g.model)
  const c = g.completion
  const u = '{"prompt_tokens":' + g.prompt + ',"completion_tokens":' + g.output + ',"total_tokens":' + g.total + '}'
  if (!info.stream) {
    ex.json(
      '{"id":"' + id + '","object":"text_completion","created":' + g.created + ',"model":' + model +
        ',"choices":[{"text":"' + c.text + '","index":0,"logprobs":null,"finish_reason":"' + finish(g) + '"}],"usage":' + u + '}',
      c.tokens,
    )
    return
  }
  const head = 'data: {"id":"' + id + '","object":"text_completion","created":' + g.created + ',"choices":[{"text":"'
  const tail = '","index":0,"logprobs":null,"finish_reason":null}],"model":' + model + (info.includeUsage ? ',"usage":null}\n\n' : '}\n\n')
  ex.stream(SSE)
  const pieces = c.pieces
  for (let i = 0; i < pieces.length; i++) ex.beat(head + pieces[i] + tail, i === 0 ? 0 : 1)
  ex.append(head + '","index":0,"logprobs":null,"finish_reason":"' + finish(g) + '"}],"model":' + model +
    (info.includeUsage ? ',"usage":null}\n\n' : '}\n\n'))
  if (info.includeUsage) {
    ex.append('data: {"id":"' + id + '","object":"text_completion","created":' + g.created + ',"choices":[],"model":' + model +
      ',"usage":' + u + '}\n\n')
  }
  ex.append(DONE)
}

const MAX_DIMENSIONS = 4096

function defaultDimensions(model: string): number {
  return model.includes('large') ? 3072 : model.startsWith('text-embedding-v') ? 1024 : 1536
}

/** Inputs as the API accepts them: a string, strings, a token array, or token arrays; each gets one vector. */
function embeddingInputs(input: unknown): string[] {
  if (typeof input === 'string') return [input]
  if (!Array.isArray(input) || input.length === 0) return []
  if (typeof input[0] === 'number') return [JSON.stringify(input)]
  const out = new Array<string>(input.length)
  for (let i = 0; i < input.length; i++) out[i] = typeof input[i] === 'string' ? input[i] : JSON.stringify(input[i])
  return out
}

/** A unit vector drawn from (seed, input): float32, so the base64 and float encodings carry the same numbers. */
function vector(seed: number, text: string, dims: number): Float32Array {
  const rng = new Rng(mixSeed(seed, hashText(text)))
  const v = new Float32Array(dims)
  let norm = 0
  for (let i = 0; i < dims; i++) {
    const x = rng.float() * 2 - 1
    v[i] = x
    norm += x * x
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0
  for (let i = 0; i < dims; i++) v[i] *= scale
  return v
}

export function embeddings(ex: Exchange, body: unknown, flavor: OpenAIFlavor): void {
  const b = (body ?? {}) as { input?: unknown; dimensions?: unknown; encoding_format?: unknown; model?: unknown }
  const info = readPrompt('openai-embeddings', body, ex.path)
  const inputs = embeddingInputs(b.input)
  if (inputs.length === 0) {
    ex.error(400, "'input' must be a non-empty string or array")
    return
  }
  const model = info.model === '' ? (flavor === 'qwen' ? 'text-embedding-v3' : 'text-embedding-3-small') : info.model
  const d = typeof b.dimensions === 'number' && Number.isInteger(b.dimensions) ? b.dimensions : defaultDimensions(model)
  if (d < 1 || d > MAX_DIMENSIONS) {
    ex.error(400, 'dimensions must be between 1 and ' + MAX_DIMENSIONS)
    return
  }
  const base64 = b.encoding_format === 'base64'
  const seed = ex.knobs!.seed
  let data = ''
  for (let i = 0; i < inputs.length; i++) {
    const v = vector(seed, inputs[i], d)
    const emb = base64 ? '"' + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') + '"' : JSON.stringify(Array.from(v))
    data += (i === 0 ? '' : ',') + '{"object":"embedding","index":' + i + ',"embedding":' + emb + '}'
  }
  const p = countPrompt(info)
  ex.json('{"object":"list","data":[' + data + '],"model":' + JSON.stringify(model) + ',"usage":{"prompt_tokens":' + p + ',"total_tokens":' + p + '}}')
}

const MODELS = {
  openai: ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-mini', 'o4-mini', 'gpt-3.5-turbo-instruct', 'text-embedding-3-small', 'text-embedding-3-large'],
  qwen: ['qwen-plus', 'qwen-turbo', 'qwen-max', 'qwen3-32b', 'text-embedding-v3'],
} as const

function modelObject(id: string, flavor: OpenAIFlavor): string {
  return '{"id":' + JSON.stringify(id) + ',"object":"model","created":1715367049,"owned_by":"' + (flavor === 'openai' ? 'system' : 'qwen') + '"}'
}

// the list never changes: serialise it once
const MODEL_LISTS = {
  openai: '{"object":"list","data":[' + MODELS.openai.map((m) => modelObject(m, 'openai')).join(',') + ']}',
  qwen: '{"object":"list","data":[' + MODELS.qwen.map((m) => modelObject(m, 'qwen')).join(',') + ']}',
} as const

/** `GET /v1/models` and `GET /v1/models/{id}`: any id is "available" so clients that probe a model carry on. */
export function models(ex: Exchange, flavor: OpenAIFlavor, id: string): void {
  ex.json(id === '' ? MODEL_LISTS[flavor] : modelObject(decodeId(id), flavor))
}

function decodeId(id: string): string {
  try {
    return decodeURIComponent(id)
  } catch {
    return id // malformed escapes: echo the id as sent rather than fail a harmless lookup
  }
}
