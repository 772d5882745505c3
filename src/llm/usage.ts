// What a response cost, in tokens, and the meter that reads it from the response body on its way to the client.
// One meter per provider family (openai.ts, responses.ts, gemini.ts, qwen.ts, anthropic.ts); createMeter picks by
// the request's API shape.
import type { ApiShape } from './prompt.js'
import type { LazyPrompt } from './estimate.js'
import { OpenAIMeter } from './openai.js'
import { GeminiMeter } from './gemini.js'
import { QwenMeter } from './qwen.js'
import { ResponsesMeter } from './responses.js'
import { AnthropicMeter } from './anthropic.js'
import { emptyUsage } from './meter.js'

/**
 * Tokens of one response. Every provider's numbers are normalised to OpenAI's convention (README "Usage per
 * provider" has the field-by-field table):
 * - `prompt`: the input the provider counts as the prompt, cached and cache-written parts included (Anthropic
 *   reports those apart: prompt = input + cache_creation + cache_read);
 * - `completion`: all output billed, reasoning included; `thoughts` is the reasoning part of it (Gemini reports them
 *   apart: completion = candidatesTokenCount + thoughtsTokenCount);
 * - `cached`: the part of `prompt` read from a cache; `cacheWrite`: the part written to one (Anthropic);
 * - `toolPrompt`: input a provider adds for its own tools, billed on top of the prompt (Gemini
 *   toolUsePromptTokenCount);
 * - `audio`: audio tokens inside prompt and completion (OpenAI), for the metrics only;
 * - `total`: what the request cost in tokens, the provider's own total when it gives one — what token buckets are
 *   charged.
 */
export interface Usage {
  prompt: number
  completion: number
  thoughts: number
  cached: number
  cacheWrite: number
  toolPrompt: number
  audio: number
  total: number
  model: string
  source: UsageSource
}

/**
 * Where the numbers come from. reported: the upstream's usage object. counted: the upstream reported none (a cut
 * stream, a server that ignores include_usage), so the delivered text was counted. partial: the body could not be
 * decoded to its end (a corrupt or truncated compressed stream), counted from what decoded. unknown: the proxy
 * could not read usage at all (an unknown Content-Encoding, usage fields of the wrong type): the estimate stays
 * charged and leaky_llm_usage_unknown_total says why.
 */
export type UsageSource = 'reported' | 'counted' | 'partial' | 'unknown'

/** Why a response's usage is unknown: the label of leaky_llm_usage_unknown_total{reason}. */
export type UnknownReason = 'encoding' | 'invalid'

export interface UsageMeter {
  /** true when write() may return other bytes than it was given (the stripped usage chunk): Content-Length no
      longer holds */
  readonly rewrites: boolean
  /** feed a response body chunk; returns the bytes to forward to the client (usually the same Buffer; without
      the stripped usage chunk when stripping; may return an empty Buffer while holding a partial event) */
  write(chunk: Buffer): Buffer
  /** response ended normally; returns any held bytes still to forward, and sets usage */
  end(): Buffer
  /** the usage: reported by the upstream when it said so, else counted. The same object on every call. */
  usage(): Usage
  /** why usage() is `unknown` ('' when it is not); valid after end() or once the response was given up */
  readonly unknown: UnknownReason | ''
  /** the body stopped decoding before its end (corrupt or truncated compression): usage becomes `partial` */
  fail(): void
  /** the body cannot be read at all (an encoding the proxy does not decode): usage becomes `unknown` */
  unreadable(): void
  /** why the answer ended as the upstream said it (`stop`, `length`, `end_turn`, `STOP`, `tool_calls`…), '' when it
      said nothing (a cut stream, an API without one): the span's gen_ai.response.finish_reasons */
  readonly finish: string
}

export interface MeterOptions {
  /** the response is an SSE stream (the caller decides from the request and the response content-type) */
  stream: boolean
  /** remove the usage-only chunk the proxy asked for itself (inject.ts); OpenAI-shaped streams only */
  stripUsageChunk: boolean
  /** the model the request named: used when the response names none */
  model: string
  /** the request's prompt tokens as estimated: used when the upstream reports none (a cut stream) */
  promptTokens: number
  /** set when promptTokens is only a bound (prompt_estimate: bytes): the exact count, taken only if needed */
  lazyPrompt?: LazyPrompt | null
}

const EMPTY = Buffer.alloc(0)

/** For APIs whose usage we cannot read: bytes pass untouched, usage is zero. */
export class PassThroughMeter implements UsageMeter {
  readonly rewrites = false
  readonly unknown = ''
  readonly finish = ''
  private readonly out: Usage

  constructor(model: string) {
    this.out = emptyUsage(model)
  }

  write(chunk: Buffer): Buffer {
    return chunk
  }

  end(): Buffer {
    return EMPTY
  }

  usage(): Usage {
    return this.out
  }

  fail(): void {}
  unreadable(): void {}
}

export function createMeter(shape: ApiShape, opts: MeterOptions): UsageMeter {
  switch (shape) {
    case 'openai-chat':
    case 'openai-completions':
    case 'openai-embeddings':
      return new OpenAIMeter(opts)
    case 'openai-responses':
      return new ResponsesMeter(opts)
    case 'gemini':
      return new GeminiMeter(opts)
    case 'gemini-embed':
      return new GeminiMeter(opts, true)
    case 'qwen-native':
      return new QwenMeter(opts)
    case 'anthropic-messages':
      return new AnthropicMeter(opts)
    case 'other':
      return new PassThroughMeter(opts.model)
    default: {
      const unknownShape: never = shape
      void unknownShape
      return new PassThroughMeter(opts.model)
    }
  }
}
