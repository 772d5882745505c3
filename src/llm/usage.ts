// What a response cost, in tokens, and the meter that reads it from the response body on its way to the client.
// One meter per provider family (openai.ts, gemini.ts, qwen.ts); createMeter picks by the request's API shape.
import type { ApiShape } from './prompt.js'
import { OpenAIMeter } from './openai.js'
import { GeminiMeter } from './gemini.js'
import { QwenMeter } from './qwen.js'

/**
 * Tokens of one response. Every provider's numbers are normalised to OpenAI's convention: `completion` is all
 * output billed, reasoning included, and `thoughts` is the reasoning part of it (Gemini reports them apart:
 * completion = candidatesTokenCount + thoughtsTokenCount); `cached` is the part of `prompt` served from cache.
 */
export interface Usage {
  prompt: number
  completion: number
  thoughts: number
  cached: number
  total: number
  model: string
  source: 'reported' | 'counted'
}

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
}

const EMPTY = Buffer.alloc(0)

/** For APIs whose usage we cannot read: bytes pass untouched, usage is zero. */
export class PassThroughMeter implements UsageMeter {
  readonly rewrites = false
  private readonly out: Usage

  constructor(model: string) {
    this.out = { prompt: 0, completion: 0, thoughts: 0, cached: 0, total: 0, model, source: 'counted' }
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
}

export function createMeter(shape: ApiShape, opts: MeterOptions): UsageMeter {
  switch (shape) {
    case 'openai-chat':
    case 'openai-completions':
    case 'openai-embeddings':
      return new OpenAIMeter(opts)
    case 'gemini':
      return new GeminiMeter(opts)
    case 'qwen-native':
      return new QwenMeter(opts)
    case 'other':
      return new PassThroughMeter(opts.model)
    default: {
      const unknownShape: never = shape
      void unknownShape
      return new PassThroughMeter(opts.model)
    }
  }
}
