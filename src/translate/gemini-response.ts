// Gemini generateContent answers → OpenAI chat completions. Each candidate is a choice; text parts are content,
// functionCall parts tool calls (arguments: the args object as JSON, whole, in one chunk: Gemini streams a call whole);
// parts marked `thought` are billed (the meter counts them) but OpenAI chat has no field for them. The stream has no
// closing event: the usage chunk and [DONE] follow the upstream's end.
import { SseSplitter } from '../llm/sse.js'
import { ChatTranslator, type TranslateOptions } from './openai-out.js'

export function geminiFinish(reason: unknown, calledTools: boolean): string {
  switch (reason) {
    case 'STOP':
      return calledTools ? 'tool_calls' : 'stop'
    case 'MAX_TOKENS':
      return 'length'
    case 'SAFETY':
    case 'RECITATION':
    case 'BLOCKLIST':
    case 'PROHIBITED_CONTENT':
    case 'SPII':
    case 'IMAGE_SAFETY':
      return 'content_filter'
    default:
      return calledTools ? 'tool_calls' : 'stop'
  }
}

export class GeminiToOpenAI extends ChatTranslator {
  protected readonly sse: SseSplitter | null
  /** per choice: the role chunk was sent, and tool calls so far */
  private started: boolean[] = []
  private calls: number[] = []

  constructor(o: TranslateOptions) {
    super(o)
    this.sse = o.stream ? new SseSplitter() : null
  }

  protected onEvent(ev: Record<string, any>): void {
    if (typeof ev.responseId === 'string') this.id = ev.responseId
    if (typeof ev.modelVersion === 'string') this.model = ev.modelVersion
    const cands = Array.isArray(ev.candidates) ? ev.candidates : []
    if (cands.length === 0 && ev.promptFeedback?.blockReason !== undefined) {
      if (!this.started[0]) this.chunk(0, { role: 'assistant', content: '' }, null)
      this.started[0] = true
      this.chunk(0, {}, 'content_filter')
      return
    }
    for (let i = 0; i < cands.length; i++) {
      const c = cands[i]
      if (c === null || typeof c !== 'object') continue
      const index = typeof c.index === 'number' ? c.index : i
      if (!this.started[index]) {
        this.started[index] = true
        this.calls[index] = 0
        this.chunk(index, { role: 'assistant', content: '' }, null)
      }
      const parts = Array.isArray(c.content?.parts) ? c.content.parts : []
      for (const p of parts) {
        if (p === null || typeof p !== 'object' || p.thought === true) continue
        if (typeof p.text === 'string') {
          if (p.text !== '') this.chunk(index, { content: p.text }, null)
        } else if (p.functionCall !== null && typeof p.functionCall === 'object') {
          const n = this.calls[index]++
          const f = p.functionCall
          this.chunk(index, { tool_calls: [{ index: n, id: typeof f.id === 'string' ? f.id : `call_${n}`, type: 'function', function: { name: f.name, arguments: JSON.stringify(f.args ?? {}) } }] }, null)
        }
      }
      if (typeof c.finishReason === 'string') this.chunk(index, {}, geminiFinish(c.finishReason, this.calls[index] > 0))
    }
  }

  protected onEnd(): void {}

  protected completion(b: Record<string, any>): Record<string, unknown> {
    if (typeof b.responseId === 'string') this.id = b.responseId
    if (typeof b.modelVersion === 'string') this.model = b.modelVersion
    const cands = Array.isArray(b.candidates) ? b.candidates : []
    const choices: unknown[] = []
    for (let i = 0; i < cands.length; i++) {
      const c = cands[i] ?? {}
      let text: string | null = null
      const calls: unknown[] = []
      const parts = Array.isArray(c.content?.parts) ? c.content.parts : []
      for (const p of parts) {
        if (p === null || typeof p !== 'object' || p.thought === true) continue
        if (typeof p.text === 'string') text = (text ?? '') + p.text
        else if (p.functionCall !== null && typeof p.functionCall === 'object') {
          const f = p.functionCall
          calls.push({ id: typeof f.id === 'string' ? f.id : `call_${calls.length}`, type: 'function', function: { name: f.name, arguments: JSON.stringify(f.args ?? {}) } })
        }
      }
      const message: Record<string, unknown> = { role: 'assistant', content: text, refusal: null }
      if (calls.length > 0) message.tool_calls = calls
      choices.push({ index: typeof c.index === 'number' ? c.index : i, message, logprobs: null, finish_reason: geminiFinish(c.finishReason, calls.length > 0) })
    }
    if (choices.length === 0 && b.promptFeedback?.blockReason !== undefined) {
      choices.push({ index: 0, message: { role: 'assistant', content: null, refusal: null }, logprobs: null, finish_reason: 'content_filter' })
    }
    return this.base(choices)
  }
}
