// Gemini's usage: `usageMetadata` {promptTokenCount, candidatesTokenCount, thoughtsTokenCount,
// cachedContentTokenCount, totalTokenCount}. JSON bodies carry it at the top level; `streamGenerateContent?alt=sse`
// carries it in every event, running, with the totals in the last one (the one with a `finishReason`); without
// alt=sse the stream is one JSON array whose last element has the totals (the base meter reads it as JSON).
// Gemini counts thoughts apart from candidates; they are folded into `completion` here (see Usage), and the
// prompt of its own tools (toolUsePromptTokenCount) is billed on top: totalTokenCount = prompt + candidates + thoughts
// + tool-use prompt.
// Delivered text is the sum of `candidates[].content.parts[].text`; parts marked `thought` count as thoughts.
import { ResponseMeter } from './meter.js'
import type { MeterOptions } from './usage.js'

export class GeminiMeter extends ResponseMeter {
  protected readonly usageKey = 'usageMetadata'
  protected readonly modelKey = 'modelVersion'
  protected readonly finishKey = 'finishReason'

  /** `embed`: embedContent / batchEmbedContents, whose body is vectors: without usageMetadata only the prompt counts */
  constructor(opts: MeterOptions, embed = false) {
    super(opts, false)
    this.countsBodyText = !embed
  }

  protected onChunk(c: Record<string, any>): boolean {
    if (typeof c.modelVersion === 'string') this.rModel = c.modelVersion
    let finished = false
    const cands = c.candidates
    if (Array.isArray(cands)) {
      for (let i = 0; i < cands.length; i++) {
        const cand = cands[i]
        if (cand === null || typeof cand !== 'object') continue
        if (typeof cand.finishReason === 'string') finished = true
        const parts = cand.content?.parts
        if (!Array.isArray(parts)) continue
        for (let j = 0; j < parts.length; j++) {
          const p = parts[j]
          if (p === null || typeof p !== 'object' || typeof p.text !== 'string') continue
          if (p.thought === true) this.thoughtText.add(p.text)
          else this.text.add(p.text)
        }
      }
    }
    return this.runningUsage(c, finished)
  }

  protected readUsage(u: Record<string, any>): void {
    this.seen = true
    const candidates = this.count(u.candidatesTokenCount)
    const thoughts = this.count(u.thoughtsTokenCount)
    this.rPrompt = this.count(u.promptTokenCount)
    this.rThoughts = thoughts
    this.rCompletion = (candidates > 0 ? candidates : 0) + (thoughts > 0 ? thoughts : 0)
    this.rCached = this.count(u.cachedContentTokenCount)
    // the input Gemini's own tools (url_context, google_search, code execution) read: billed, outside promptTokenCount
    this.rToolPrompt = this.count(u.toolUsePromptTokenCount)
    this.rTotal = this.count(u.totalTokenCount)
  }
}
