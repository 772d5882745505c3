// OpenAI's usage, and Qwen's in its OpenAI-compatible mode: chat completions, legacy completions and embeddings.
// JSON bodies carry `usage` at the top level. Streams carry it only when the request asked
// (`stream_options.include_usage`): one last chunk with `"choices":[]` and the usage, before `data: [DONE]`; that
// chunk is the one stripping removes when the proxy asked on the client's behalf (inject.ts).
// Delivered text is the sum of `choices[].delta.content` (chat, plus refusals and tool-call arguments) or
// `choices[].text` (completions); `delta.reasoning_content` (Qwen, DeepSeek) counts as thoughts.
import { ResponseMeter } from './meter.js'
import type { MeterOptions } from './usage.js'

export class OpenAIMeter extends ResponseMeter {
  protected readonly usageKey = 'usage'
  protected readonly modelKey = 'model'
  protected readonly finishKey = 'finish_reason'

  constructor(opts: MeterOptions) {
    super(opts, true)
  }

  protected onChunk(c: Record<string, any>): boolean {
    if (this.rModel === '' && typeof c.model === 'string') this.rModel = c.model
    const choices = c.choices
    if (Array.isArray(choices)) {
      for (let i = 0; i < choices.length; i++) {
        const ch = choices[i]
        if (ch === null || typeof ch !== 'object') continue
        const d = ch.delta
        if (d !== null && typeof d === 'object') this.delta(d)
        else if (typeof ch.text === 'string') this.text.add(ch.text)
      }
    }
    const u = c.usage
    if (u === null || typeof u !== 'object') return false
    this.readUsage(u)
    // usage arrives once, in the last chunk: from here on it is the final count, even if the stream is cut
    this.final = true
    return Array.isArray(choices) && choices.length === 0
  }

  protected readUsage(u: Record<string, any>): void {
    this.seen = true
    this.rPrompt = this.count(u.prompt_tokens)
    this.rCompletion = this.count(u.completion_tokens)
    this.rTotal = this.count(u.total_tokens)
    const pd = u.prompt_tokens_details
    const cd = u.completion_tokens_details
    this.rCached = this.count(pd?.cached_tokens)
    this.rThoughts = this.count(cd?.reasoning_tokens)
    const audio = Math.max(0, this.count(pd?.audio_tokens)) + Math.max(0, this.count(cd?.audio_tokens))
    this.rAudio = audio > 0 ? audio : -1
  }

  private delta(d: Record<string, any>): void {
    if (typeof d.content === 'string') this.text.add(d.content)
    if (typeof d.refusal === 'string') this.text.add(d.refusal)
    if (typeof d.reasoning_content === 'string') this.thoughtText.add(d.reasoning_content)
    const calls = d.tool_calls
    if (Array.isArray(calls)) {
      for (let i = 0; i < calls.length; i++) {
        const f = calls[i]?.function
        if (f === null || typeof f !== 'object') continue
        if (typeof f.name === 'string') this.text.add(f.name)
        if (typeof f.arguments === 'string') this.text.add(f.arguments)
      }
    }
  }
}
