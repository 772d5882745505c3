// The client side of a translated answer: OpenAI chat completions JSON and `chat.completion.chunk` SSE events,
// built from what a provider translator reads. The chunk prefix (id, created, model) is serialised once per answer,
// so an event costs one JSON.stringify of its delta. Usage comes from the request's usage meter, which reads the
// upstream's own bytes with that provider's accounting: the client sees the numbers the limits were charged.
import type { Usage, UsageMeter } from '../llm/usage.js'
import type { SseSplitter } from '../llm/sse.js'

const EMPTY = Buffer.alloc(0)

/** OpenAI's usage object from the proxy's normalised usage (src/llm/usage.ts follows OpenAI's convention). */
export function openaiUsage(u: Usage): Record<string, unknown> {
  return {
    prompt_tokens: u.prompt,
    completion_tokens: u.completion,
    total_tokens: u.total,
    prompt_tokens_details: { cached_tokens: u.cached },
    completion_tokens_details: { reasoning_tokens: u.thoughts },
  }
}

export interface TranslateOptions {
  stream: boolean
  /** the client asked for stream_options.include_usage: a usage-only chunk before [DONE] */
  includeUsage: boolean
  /** the model the upstream was sent: the client is told it answered, unless the upstream names its own version */
  model: string
  /** fallback id when the upstream gives none */
  id: string
  meter: UsageMeter | null
}

/** What the stream stage needs of a translator: bytes in (the upstream's, after the meter), the client's bytes out. */
export interface ResponseTranslator {
  write(chunk: Buffer): Buffer
  /** the upstream's answer ended; the rest of the client's answer */
  end(): Buffer
  /** the upstream stream broke after the client's stream began: the usage chunk (if asked) and an error event */
  fail(code: string): Buffer
}

/**
 * Base of the provider translators: SSE framing in, OpenAI chunks out, and the JSON body kept whole (an answer that is
 * not a stream is translated once it is complete).
 */
export abstract class ChatTranslator implements ResponseTranslator {
  protected readonly o: TranslateOptions
  protected readonly created = Math.floor(Date.now() / 1000)
  protected id: string
  protected model: string
  /** `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[` */
  private prefix = ''
  protected out = ''
  protected done = false
  private parts: Buffer[] = []
  protected abstract readonly sse: SseSplitter | null

  constructor(o: TranslateOptions) {
    this.o = o
    this.id = o.id
    this.model = o.model
  }

  /** one parsed upstream event */
  protected abstract onEvent(ev: Record<string, any>, name: string): void
  /** the whole upstream JSON answer → the OpenAI chat.completion object (without usage) */
  protected abstract completion(body: Record<string, any>): Record<string, unknown>
  /** the upstream stream ended normally: anything still to say before the usage chunk and [DONE] */
  protected abstract onEnd(): void

  write(chunk: Buffer): Buffer {
    if (!this.o.stream) {
      this.parts.push(chunk)
      return EMPTY
    }
    const sse = this.sse!
    sse.push(chunk)
    while (sse.next()) {
      const data = sse.data()
      if (data === null || this.done) continue
      let ev: unknown
      try {
        ev = JSON.parse(data)
      } catch {
        continue
      }
      if (ev !== null && typeof ev === 'object') this.onEvent(ev as Record<string, any>, eventName(sse))
    }
    return this.flush()
  }

  end(): Buffer {
    if (!this.o.stream) {
      let body: unknown
      try {
        body = JSON.parse(Buffer.concat(this.parts).toString('utf8'))
      } catch {
        return Buffer.from(JSON.stringify({ error: { message: 'the upstream answer is not JSON', type: 'upstream_error', code: 'LEAKY_UPSTREAM_INVALID' } }))
      }
      const c = this.completion(body as Record<string, any>)
      if (this.o.meter !== null) c.usage = openaiUsage(this.o.meter.usage())
      return Buffer.from(JSON.stringify(c))
    }
    if (!this.done) {
      this.onEnd()
      this.usageChunk()
      this.out += 'data: [DONE]\n\n'
      this.done = true
    }
    return this.flush()
  }

  fail(code: string): Buffer {
    if (!this.done) this.error('upstream stream failed', 'upstream_error', code)
    return this.flush()
  }

  /** An OpenAI-style error event (the usage chunk first, when asked); the stream says nothing after it. */
  protected error(message: string, type: string, code: string | null): void {
    this.usageChunk()
    this.out += `data: ${JSON.stringify({ error: { message, type, code } })}\n\n`
    this.done = true
  }

  protected usageChunk(): void {
    if (!this.o.includeUsage || this.o.meter === null) return
    this.out += `data: ${this.head()}],"usage":${JSON.stringify(openaiUsage(this.o.meter.usage()))}}\n\n`
  }

  /** One chunk with one choice. */
  protected chunk(index: number, delta: Record<string, unknown>, finish: string | null): void {
    this.out += `data: ${this.head()}{"index":${index},"delta":${JSON.stringify(delta)},"logprobs":null,"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]}\n\n`
  }

  private head(): string {
    if (this.prefix === '') {
      this.prefix = `{"id":${JSON.stringify(this.id)},"object":"chat.completion.chunk","created":${this.created},"model":${JSON.stringify(this.model)},"choices":[`
    }
    return this.prefix
  }

  protected base(choices: unknown[]): Record<string, unknown> {
    return { id: this.id, object: 'chat.completion', created: this.created, model: this.model, choices }
  }

  private flush(): Buffer {
    if (this.out === '') return EMPTY
    const b = Buffer.from(this.out)
    this.out = ''
    return b
  }
}

/** The `event:` field of the current SSE event ('' when none): Anthropic names its events there as well. */
function eventName(sse: SseSplitter): string {
  const raw = sse.raw()
  if (raw.length < 7 || raw[0] !== 0x65 /* e */) return ''
  const s = raw.toString('latin1', 0, Math.min(raw.length, 64))
  const m = /^event: ?([^\r\n]*)/.exec(s)
  return m === null ? '' : m[1]
}
