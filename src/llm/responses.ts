// OpenAI's Responses API (`POST /v1/responses`, Azure's `/openai/responses`): `usage` {input_tokens,
// input_tokens_details.cached_tokens, output_tokens, output_tokens_details.reasoning_tokens, total_tokens}. A JSON
// body carries it at the top level. A stream is typed events (`event: response.output_text.delta` …); usage arrives
// once, inside the terminal event's `response` (`response.completed`, or `response.incomplete` / `response.failed`),
// always — the API has no include_usage switch, so nothing is injected or stripped.
// Delivered text is the sum of the `delta` of output_text, refusal and function_call_arguments events; reasoning
// summaries count as thoughts.
import type { JsonBody } from './json-body.js'
import { ResponseMeter } from './meter.js'
import type { MeterOptions } from './usage.js'

const TEXT_DELTAS = new Set([
  'response.output_text.delta', 'response.refusal.delta', 'response.function_call_arguments.delta',
  'response.custom_tool_call_input.delta',
])
const THOUGHT_DELTAS = new Set(['response.reasoning_summary_text.delta', 'response.reasoning_text.delta'])
const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed'])

export class ResponsesMeter extends ResponseMeter {
  protected readonly usageKey = 'usage'
  protected readonly modelKey = 'model'
  // `status` is also every output item's: the terminal event's response status is read where it is known to be
  protected readonly finishKey = ''

  constructor(opts: MeterOptions) {
    super(opts, false)
  }

  protected onChunk(c: Record<string, any>): boolean {
    const type = c.type
    if (typeof type !== 'string') return false
    if (typeof c.delta === 'string') {
      if (TEXT_DELTAS.has(type)) this.text.add(c.delta)
      else if (THOUGHT_DELTAS.has(type)) this.thoughtText.add(c.delta)
      return false
    }
    const r = c.response
    if (r === null || typeof r !== 'object') return false
    if (typeof r.model === 'string') this.rModel = r.model
    if (TERMINAL.has(type)) {
      const why = r.incomplete_details?.reason
      if (typeof why === 'string') this.setFinish(why)
      else if (typeof r.status === 'string') this.setFinish(r.status)
    }
    if (TERMINAL.has(type) && r.usage !== null && typeof r.usage === 'object') {
      this.readUsage(r.usage)
      this.final = true
    }
    return false
  }

  /** A JSON response's own status comes before its output items (whose statuses come later): the first in the head. */
  protected override finishOfBody(body: JsonBody): void {
    const why = body.stringField('reason')
    const status = body.stringField('status')
    if (status === 'incomplete' && why !== '') this.setFinish(why)
    else if (status !== '') this.setFinish(status)
  }

  protected readUsage(u: Record<string, any>): void {
    this.seen = true
    this.rPrompt = this.count(u.input_tokens)
    this.rCompletion = this.count(u.output_tokens)
    this.rTotal = this.count(u.total_tokens)
    this.rCached = this.count(u.input_tokens_details?.cached_tokens)
    this.rThoughts = this.count(u.output_tokens_details?.reasoning_tokens)
  }
}
