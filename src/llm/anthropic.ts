// Anthropic's Messages API (`POST /v1/messages`): `usage` {input_tokens, cache_creation_input_tokens,
// cache_read_input_tokens, output_tokens}. Anthropic reports the cached and cache-written input apart from
// input_tokens; here they are folded into `prompt` (OpenAI's convention, see Usage), `cached` and `cacheWrite` keep
// them visible, and the total is their sum with the output (Anthropic sends no total).
// A JSON body carries usage at the top level. A stream sends it in two parts: `message_start` with the input counts
// (and an output count of 1 or so), then `message_delta` near the end with the cumulative `output_tokens` (newer
// API versions repeat the input counts there too); only the fields each event has are taken.
// Delivered text is the sum of content_block_delta text and tool-input JSON; thinking deltas count as thoughts.
// message_start's output count is a placeholder (1): a stream that ends without message_delta (Anthropic can send
// an `error` event mid-stream, e.g. overloaded_error, and close) is charged the text it delivered, not that 1.
import { ResponseMeter } from './meter.js'
import type { MeterOptions } from './usage.js'

export class AnthropicMeter extends ResponseMeter {
  protected readonly usageKey = 'usage'
  protected readonly modelKey = 'model'
  protected readonly finishKey = 'stop_reason'
  private input = -1
  private cacheRead = -1
  private cacheWrite = -1
  /** message_delta brought the cumulative output count */
  private delta = false

  constructor(opts: MeterOptions) {
    super(opts, false)
  }

  protected onChunk(c: Record<string, any>): boolean {
    switch (c.type) {
      case 'content_block_delta': {
        const d = c.delta
        if (d === null || typeof d !== 'object') return false
        if (typeof d.text === 'string') this.text.add(d.text)
        else if (typeof d.partial_json === 'string') this.text.add(d.partial_json)
        else if (typeof d.thinking === 'string') this.thoughtText.add(d.thinking)
        return false
      }
      case 'message_start': {
        const m = c.message
        if (m === null || typeof m !== 'object') return false
        if (typeof m.model === 'string') this.rModel = m.model
        if (m.usage !== null && typeof m.usage === 'object') this.readUsage(m.usage)
        return false
      }
      case 'message_delta':
        if (c.usage !== null && typeof c.usage === 'object') {
          this.readUsage(c.usage)
          // the output count is cumulative and this is its last word: final even if message_stop never comes
          this.final = true
          this.delta = true
        }
        return false
      default:
        return false
    }
  }

  override end(): Buffer {
    const held = super.end()
    if (this.sse !== null && !this.delta) this.final = false
    return held
  }

  protected readUsage(u: Record<string, any>): void {
    this.seen = true
    const input = this.count(u.input_tokens)
    const read = this.count(u.cache_read_input_tokens)
    const write = this.count(u.cache_creation_input_tokens)
    const output = this.count(u.output_tokens)
    if (input >= 0) this.input = input
    if (read >= 0) this.cacheRead = read
    if (write >= 0) this.cacheWrite = write
    if (output >= 0) this.rCompletion = output
    if (this.input >= 0) this.rPrompt = this.input + Math.max(0, this.cacheRead) + Math.max(0, this.cacheWrite)
    this.rCached = this.cacheRead
    this.rCacheWrite = this.cacheWrite
  }
}
