// A provider's error answer (any non-2xx status) → OpenAI's error body, status kept. Error bodies are small: kept
// whole and rewritten at the end. The provider's own type/status names the OpenAI `type`; its message is passed on.
import type { ResponseTranslator } from './openai-out.js'

const EMPTY = Buffer.alloc(0)

export class ErrorToOpenAI implements ResponseTranslator {
  private parts: Buffer[] = []
  private size = 0
  private readonly status: number

  constructor(status: number) {
    this.status = status
  }

  write(chunk: Buffer): Buffer {
    // an error page of megabytes is not an error message: keep its start
    if (this.size < 64 * 1024) {
      this.parts.push(chunk)
      this.size += chunk.length
    }
    return EMPTY
  }

  end(): Buffer {
    const text = Buffer.concat(this.parts).toString('utf8')
    let message = text.slice(0, 2000)
    let type = this.status === 429 ? 'rate_limit_exceeded' : this.status >= 500 ? 'upstream_error' : 'invalid_request_error'
    let code: string | null = null
    try {
      const v = JSON.parse(text) as Record<string, any>
      const e = v.error ?? v
      if (typeof e.message === 'string') message = e.message
      // Anthropic: error.type; Gemini: error.status (INVALID_ARGUMENT…)
      if (typeof e.type === 'string') type = e.type
      else if (typeof e.status === 'string') code = e.status
    } catch {
      // not JSON (a proxy's HTML page): its text is the message
    }
    return Buffer.from(JSON.stringify({ error: { message, type, param: null, code } }))
  }

  fail(): Buffer {
    return EMPTY
  }
}
