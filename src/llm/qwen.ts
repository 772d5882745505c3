// Qwen's native DashScope usage: `usage` {input_tokens, output_tokens, total_tokens}, with reasoning in
// `output_tokens_details.reasoning_tokens` and cache hits in `prompt_tokens_details.cached_tokens`. JSON bodies
// carry it at the top level; `X-DashScope-SSE: enable` streams carry it in every event, running, final in the event
// whose finish_reason is not "null". (Compatible mode speaks OpenAI's format: openai.ts.)
//
// Streamed text is the whole text so far in each event, or only the new part when the request set
// `parameters.incremental_output`. The meter is not told which: it decides from the first two texts (the second
// extends the first → cumulative) and then counts only what each event adds.
import { ResponseMeter } from './meter.js'
import type { DeliveredText } from './delivered.js'
import type { MeterOptions } from './usage.js'

const UNDECIDED = 0
const INCREMENTAL = 1
const CUMULATIVE = 2

/** One streamed text field (content, reasoning): how much of it was counted, and its first value while undecided. */
class Field {
  len = 0
  first: string | null = null
}

export class QwenMeter extends ResponseMeter {
  protected readonly usageKey = 'usage'
  protected readonly modelKey = 'model'
  protected readonly finishKey = 'finish_reason'
  private mode = UNDECIDED
  private readonly content = new Field()
  private readonly reasoning = new Field()

  constructor(opts: MeterOptions) {
    super(opts, false)
  }

  protected onChunk(c: Record<string, any>): boolean {
    let finished = false
    const out = c.output
    if (out !== null && typeof out === 'object') {
      if (typeof out.text === 'string') this.feed(out.text, this.content, this.text)
      if (isFinish(out.finish_reason)) finished = true
      const choices = out.choices
      if (Array.isArray(choices)) {
        for (let i = 0; i < choices.length; i++) {
          const ch = choices[i]
          if (ch === null || typeof ch !== 'object') continue
          if (isFinish(ch.finish_reason)) finished = true
          const m = ch.message
          if (m === null || typeof m !== 'object') continue
          this.feed(textOf(m.content), this.content, this.text)
          if (typeof m.reasoning_content === 'string') this.feed(m.reasoning_content, this.reasoning, this.thoughtText)
        }
      }
    }
    return this.runningUsage(c, finished)
  }

  protected readUsage(u: Record<string, any>): void {
    this.seen = true
    this.rPrompt = this.count(u.input_tokens)
    this.rCompletion = this.count(u.output_tokens)
    this.rTotal = this.count(u.total_tokens)
    this.rThoughts = this.count(u.output_tokens_details?.reasoning_tokens)
    const cached = this.count(u.prompt_tokens_details?.cached_tokens)
    this.rCached = cached >= 0 ? cached : this.count(u.input_tokens_details?.cached_tokens)
  }

  private feed(t: string, f: Field, into: DeliveredText): void {
    if (t.length === 0) return
    switch (this.mode) {
      case INCREMENTAL:
        into.add(t)
        return
      case CUMULATIVE:
        if (t.length > f.len) {
          into.add(t.slice(f.len))
          f.len = t.length
        }
        return
      default:
        if (f.first === null) {
          f.first = t
          f.len = t.length
          into.add(t)
          return
        }
        this.mode = t.length > f.first.length && t.startsWith(f.first) ? CUMULATIVE : INCREMENTAL
        this.content.first = null
        this.reasoning.first = null
        if (this.mode === INCREMENTAL) into.add(t)
        else {
          into.add(t.slice(f.len))
          f.len = t.length
        }
    }
  }
}

/** DashScope writes the string "null" while a stream is unfinished. */
function isFinish(v: unknown): boolean {
  return typeof v === 'string' && v !== 'null' && v !== ''
}

/** A message's content: a string, or (multimodal models) a list of `{text}` parts. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  let s = ''
  for (const p of content) if (p !== null && typeof p === 'object' && typeof p.text === 'string') s += p.text
  return s
}
