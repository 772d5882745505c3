// What one LLM request gets: prompt tokens exactly as the proxy's estimator counts them, the completion text,
// hidden reasoning tokens, why it stopped, and the ids to stamp on it. Shared by every provider's renderer.
import { promptTokens, type PromptInfo } from '../llm/prompt.js'
import { type Completion, completionFor, DEFAULT_TOKENS, MAX_TOKENS } from './text.js'
import { hashText, mixSeed, type Rng } from './prng.js'
import { SEEDED_CREATED } from './ids.js'
import type { Exchange } from './exchange.js'

// promptTokens runs the BPE over the whole prompt; a benchmark repeats one prompt, so remember recent answers.
// Keyed by text and message count (the only inputs of promptTokens); cleared wholesale when full.
const PROMPT_CACHE_MAX = 1024
const promptCache = new Map<string, number>()

/** promptTokens(info), remembered for recent prompts. */
export function countPrompt(info: PromptInfo): number {
  const key = info.messages + '\u0000' + info.text
  let n = promptCache.get(key)
  if (n === undefined) {
    n = promptTokens(info)
    if (promptCache.size >= PROMPT_CACHE_MAX) promptCache.clear()
    promptCache.set(key, n)
  }
  return n
}

export class Generation {
  /** promptTokens(readPrompt(shape, body, path)): what the proxy pre-charges, to the token */
  readonly prompt: number
  readonly completion: Completion
  /** reasoning tokens: counted in the output usage, their text never sent */
  readonly thoughts: number
  /** the text stopped at the request's own maximum (finish reason "length" / "MAX_TOKENS") */
  readonly limited: boolean
  readonly model: string
  readonly ids: Rng
  /** unix seconds */
  readonly created: number

  /** `thinkingBudget`: reasoning the request itself asked for (Gemini), used when x-stub-thoughts is absent. */
  constructor(ex: Exchange, info: PromptInfo, defaultModel: string, thinkingBudget = 0) {
    const k = ex.knobs!
    this.prompt = countPrompt(info)
    let n = k.tokens >= 0 ? k.tokens : info.maxOutput >= 0 ? info.maxOutput : DEFAULT_TOKENS
    if (n > MAX_TOKENS) n = MAX_TOKENS
    this.limited = false
    if (info.maxOutput >= 0 && n >= info.maxOutput) {
      n = info.maxOutput
      this.limited = true
    }
    const seed = mixSeed(k.seed, hashText(info.text))
    this.completion = completionFor(seed, n)
    const t = k.thoughts >= 0 ? k.thoughts : thinkingBudget > 0 ? thinkingBudget : 0
    this.thoughts = t > MAX_TOKENS ? MAX_TOKENS : t
    this.model = info.model === '' ? defaultModel : info.model
    this.ids = ex.idRng(mixSeed(seed, n))
    this.created = k.seeded ? SEEDED_CREATED : Math.floor(Date.now() / 1000)
  }

  /** output tokens as billed: visible text plus reasoning */
  get output(): number {
    return this.completion.tokens + this.thoughts
  }

  get total(): number {
    return this.prompt + this.completion.tokens + this.thoughts
  }
}
