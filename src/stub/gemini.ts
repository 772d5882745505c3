// Gemini's wire format: `models/{model}:generateContent` (JSON), `:streamGenerateContent?alt=sse` (SSE events
// `data: {GenerateContentResponse}\r\n\r\n`, as Google sends them), the same without alt=sse (one streamed JSON
// array), `:countTokens`, and the model list. Reasoning ("thoughts") is counted in usageMetadata, never sent.
import { readPrompt } from '../llm/prompt.js'
import { countPrompt, Generation } from './generation.js'
import type { Exchange } from './exchange.js'
import { base62 } from './ids.js'

export type GeminiAction = 'generateContent' | 'streamGenerateContent' | 'countTokens'

/** Google streams a few tokens per event, not one. */
const PIECES_PER_CHUNK = 4

function thinkingBudget(body: unknown): number {
  const t = (body as { generationConfig?: { thinkingConfig?: { thinkingBudget?: unknown } } } | null)?.generationConfig?.thinkingConfig?.thinkingBudget
  return typeof t === 'number' && t > 0 ? Math.floor(t) : 0
}

function usageMetadata(prompt: number, candidates: number, thoughts: number): string {
  return '{"promptTokenCount":' + prompt + ',"candidatesTokenCount":' + candidates + ',"totalTokenCount":' +
    (prompt + candidates + thoughts) + ',"promptTokensDetails":[{"modality":"TEXT","tokenCount":' + prompt + '}]' +
    (thoughts > 0 ? ',"thoughtsTokenCount":' + thoughts : '') + '}'
}

export function gemini(ex: Exchange, body: unknown, action: GeminiAction, sse: boolean): void {
  if (action === 'countTokens') {
    countTokens(ex, body)
    return
  }
  const info = readPrompt('gemini', body, ex.path)
  const g = new Generation(ex, info, 'gemini-2.5-flash', thinkingBudget(body))
  const c = g.completion
  const finish = g.limited ? 'MAX_TOKENS' : 'STOP'
  // an object's tail after its usage: model and id are the same on every chunk
  const tail = ',"modelVersion":' + JSON.stringify(g.model) + ',"responseId":"' + base62(g.ids, 22) + '"}'
  if (action === 'generateContent') {
    ex.json(
      '{"candidates":[{"content":{"parts":[{"text":"' + c.text + '"}],"role":"model"},"finishReason":"' + finish +
        '","index":0}],"usageMetadata":' + usageMetadata(g.prompt, c.tokens, g.thoughts) + tail,
      c.tokens,
    )
    return
  }
  const n = c.pieces.length
  const chunks = n === 0 ? 1 : Math.ceil(n / PIECES_PER_CHUNK)
  ex.stream(sse ? 'text/event-stream' : 'application/json; charset=UTF-8')
  for (let k = 0; k < chunks; k++) {
    const from = k * PIECES_PER_CHUNK
    const to = Math.min(n, from + PIECES_PER_CHUNK)
    const last = k === chunks - 1
    // every chunk carries usage so far (as Google's do); the last one carries the final, exact counts
    const json = '{"candidates":[{"content":{"parts":[{"text":"' + c.slice(from, to) + '"}],"role":"model"},' +
      (last ? '"finishReason":"' + finish + '",' : '') + '"index":0}],"usageMetadata":' +
      usageMetadata(g.prompt, last ? c.tokens : to, g.thoughts) + tail
    const wire = sse ? 'data: ' + json + '\r\n\r\n' : (k === 0 ? '[' : ',\r\n') + json + (last ? ']' : '')
    ex.beat(wire, to - from)
  }
}

function countTokens(ex: Exchange, body: unknown): void {
  const wrapped = (body as { generateContentRequest?: unknown } | null)?.generateContentRequest
  const info = readPrompt('gemini', wrapped ?? body, ex.path)
  const p = countPrompt(info)
  ex.json('{"totalTokens":' + p + ',"promptTokensDetails":[{"modality":"TEXT","tokenCount":' + p + '}]}')
}

const MODELS = [
  ['gemini-2.5-flash', 'Gemini 2.5 Flash'],
  ['gemini-2.5-pro', 'Gemini 2.5 Pro'],
  ['gemini-2.0-flash', 'Gemini 2.0 Flash'],
] as const

const MODEL_LIST = JSON.stringify({
  models: MODELS.map(([id, name]) => ({
    name: 'models/' + id,
    version: '001',
    displayName: name,
    inputTokenLimit: 1048576,
    outputTokenLimit: 65536,
    supportedGenerationMethods: ['generateContent', 'countTokens'],
  })),
})

/** `GET /v1beta/models` */
export function geminiModels(ex: Exchange): void {
  ex.json(MODEL_LIST)
}
