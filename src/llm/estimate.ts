// The token cost of a request before it runs, for the limiter to pre-charge: the prompt's tokens and the most
// output the request may produce. The account stage later replaces the estimate with the reported usage.
//
// The prompt is counted like promptTokens counts it (text + per-message framing) but in segments
// (countTokensSegmented): equal for prose, and bounded for text the BPE is quadratic on (CJK, long runs), where one
// 32 K-character prompt would otherwise hold the worker's event loop for seconds.
import { countTokensSegmented } from './delivered.js'
import { promptTokens, readPrompt, type ApiShape, type PromptInfo } from './prompt.js'

export interface TokenEstimate {
  prompt: number
  /** requested maximum output (times the number of choices asked for), or the default when the client gave none */
  maxOutput: number
  total: number
  info: PromptInfo
}

export interface EstimateHeaders {
  /** DashScope streams only when the request says `X-DashScope-SSE: enable` */
  dashscopeSse: boolean
}

export function estimateTokens(shape: ApiShape, body: unknown, path: string, headers: EstimateHeaders,
  defaultMaxOutput: number): TokenEstimate {
  const info = readPrompt(shape, body, path)
  const prompt = shape === 'other' ? 0 : countTokensSegmented(info.text) + framingTokens(info)
  return estimateWithPrompt(shape, body, info, prompt, headers, defaultMaxOutput)
}

/**
 * The estimate with the prompt bounded instead of counted (upstream `prompt_estimate: bytes`): its UTF-8 byte count
 * plus the framing. Every token of a byte-level BPE (o200k, cl100k: all the tokenizers in use) stands for at least
 * one byte, and a text counted in segments sums counts of its parts, so bytes ≥ countTokensSegmented(text): never
 * an undercharge. Costs one native byte count instead of the BPE (~40 µs for a 1 KB prompt here). The exact count is
 * left to `LazyPrompt`, for whoever needs it (a denial, a response without usage).
 */
export function estimateBound(shape: ApiShape, body: unknown, path: string, headers: EstimateHeaders,
  defaultMaxOutput: number): TokenEstimate {
  const info = readPrompt(shape, body, path)
  const prompt = shape === 'other' ? 0 : Buffer.byteLength(info.text, 'utf8') + framingTokens(info)
  return estimateWithPrompt(shape, body, info, prompt, headers, defaultMaxOutput)
}

/** A prompt bounded by estimateBound, counted exactly the first time someone asks (then remembered). */
export class LazyPrompt {
  private n = -1

  constructor(private readonly info: PromptInfo) {}

  get counted(): boolean {
    return this.n >= 0
  }

  /** Exactly what estimateTokens would have pre-charged for the prompt (countTokensSegmented + framing). */
  tokens(): number {
    if (this.n < 0) this.n = countTokensSegmented(this.info.text) + framingTokens(this.info)
    return this.n
  }
}

/** The estimate for a prompt counted elsewhere (the tokenizer pool). */
export function estimateWithPrompt(shape: ApiShape, body: unknown, info: PromptInfo, prompt: number, headers: EstimateHeaders,
  defaultMaxOutput: number): TokenEstimate {
  if (shape === 'qwen-native') info.stream = headers.dashscopeSse
  let maxOutput = 0
  if (shape !== 'other' && shape !== 'openai-embeddings' && shape !== 'gemini-embed') {
    maxOutput = (info.maxOutput >= 0 ? info.maxOutput : defaultMaxOutput) * choices(shape, body)
  }
  return { prompt, maxOutput, total: prompt + maxOutput, info }
}

/** The per-message tokens promptTokens adds to the text's: promptTokens of the same prompt without its text. */
export function framingTokens(info: PromptInfo): number {
  return info.messages > 0 ? promptTokens({ ...info, text: '' }) : 0
}

/** Completions asked for at once: OpenAI `n`, Gemini `generationConfig.candidateCount`, DashScope `parameters.n`. */
function choices(shape: ApiShape, body: unknown): number {
  if (body === null || typeof body !== 'object') return 1
  const b = body as Record<string, any>
  const n = shape === 'gemini' ? b.generationConfig?.candidateCount : shape === 'qwen-native' ? b.parameters?.n : b.n
  return typeof n === 'number' && Number.isInteger(n) && n > 1 && n <= 128 ? n : 1
}
