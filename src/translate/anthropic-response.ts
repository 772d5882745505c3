// Anthropic Messages answers → OpenAI chat completions. Stream events map one to one or to nothing:
// message_start → the role chunk; a text delta → content; a tool_use block → a tool call (its input JSON streamed as
// the arguments, exactly as sent, malformed or not); message_delta → the finish reason; message_stop → usage and
// [DONE]; an `error` event → an OpenAI-style error event. Thinking is billed (the meter counts it) but OpenAI chat
// has no field for it.
import { SseSplitter } from '../llm/sse.js'
import { ChatTranslator, type TranslateOptions } from './openai-out.js'

const FINISH: Record<string, string> = {
  end_turn: 'stop', stop_sequence: 'stop', max_tokens: 'length', tool_use: 'tool_calls', pause_turn: 'stop', refusal: 'content_filter',
  model_context_window_exceeded: 'length',
}

export function anthropicFinish(reason: unknown): string {
  return typeof reason === 'string' ? (FINISH[reason] ?? 'stop') : 'stop'
}

export class AnthropicToOpenAI extends ChatTranslator {
  protected readonly sse: SseSplitter | null
  /** content block index → tool call index (-1: not a tool block) */
  private tools: number[] = []
  private nextTool = 0

  constructor(o: TranslateOptions) {
    super(o)
    this.sse = o.stream ? new SseSplitter() : null
  }

  protected onEvent(ev: Record<string, any>): void {
    switch (ev.type) {
      case 'message_start': {
        const m = ev.message
        if (m !== null && typeof m === 'object') {
          if (typeof m.id === 'string') this.id = m.id
          if (typeof m.model === 'string') this.model = m.model
        }
        this.chunk(0, { role: 'assistant', content: '' }, null)
        return
      }
      case 'content_block_start': {
        const b = ev.content_block
        const at = typeof ev.index === 'number' ? ev.index : 0
        if (b !== null && typeof b === 'object' && b.type === 'tool_use') {
          const i = this.nextTool++
          this.tools[at] = i
          this.chunk(0, { tool_calls: [{ index: i, id: b.id, type: 'function', function: { name: b.name, arguments: '' } }] }, null)
        } else {
          this.tools[at] = -1
          if (b !== null && typeof b === 'object' && b.type === 'text' && typeof b.text === 'string' && b.text !== '') this.chunk(0, { content: b.text }, null)
        }
        return
      }
      case 'content_block_delta': {
        const d = ev.delta
        if (d === null || typeof d !== 'object') return
        if (typeof d.text === 'string') this.chunk(0, { content: d.text }, null)
        else if (typeof d.partial_json === 'string') {
          const i = this.tools[typeof ev.index === 'number' ? ev.index : 0] ?? -1
          if (i >= 0) this.chunk(0, { tool_calls: [{ index: i, function: { arguments: d.partial_json } }] }, null)
        }
        return
      }
      case 'message_delta': {
        const reason = ev.delta?.stop_reason
        if (reason !== undefined && reason !== null) this.chunk(0, {}, anthropicFinish(reason))
        return
      }
      case 'error': {
        const e = ev.error ?? {}
        this.error(typeof e.message === 'string' ? e.message : 'upstream error', typeof e.type === 'string' ? e.type : 'upstream_error', null)
        return
      }
      default:
        // ping, content_block_stop, message_stop: nothing to say (message_stop's end comes with the body's end)
        return
    }
  }

  protected onEnd(): void {}

  protected completion(b: Record<string, any>): Record<string, unknown> {
    if (typeof b.id === 'string') this.id = b.id
    if (typeof b.model === 'string') this.model = b.model
    let text: string | null = null
    const calls: unknown[] = []
    const content = Array.isArray(b.content) ? b.content : []
    for (const c of content) {
      if (c === null || typeof c !== 'object') continue
      if (c.type === 'text' && typeof c.text === 'string') text = (text ?? '') + c.text
      else if (c.type === 'tool_use') calls.push({ id: c.id, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.input ?? {}) } })
    }
    const message: Record<string, unknown> = { role: 'assistant', content: text, refusal: null }
    if (calls.length > 0) message.tool_calls = calls
    return this.base([{ index: 0, message, logprobs: null, finish_reason: anthropicFinish(b.stop_reason) }])
  }
}
