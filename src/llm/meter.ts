// The part every provider's usage meter shares: splitting an SSE stream into events (or keeping a bounded copy of
// a JSON body), stripping the usage-only event the proxy asked for itself, remembering what the upstream reported
// and counting what the client was sent. A provider subclass only reads its own JSON: one parsed SSE event
// (`onChunk`), one usage object (`readUsage`).
//
// Bytes are never held back longer than the SSE framing requires: without stripping every chunk is returned as
// it came; with stripping only the bytes of an incomplete event wait for the rest of that event.
import { countTokensSegmented, DeliveredText } from './delivered.js'
import { JsonBody, parseJson, partialTexts, stringAfterKey } from './json-body.js'
import { SseSplitter } from './sse.js'
import type { LazyPrompt } from './estimate.js'
import type { MeterOptions, UnknownReason, Usage, UsageMeter } from './usage.js'

const EMPTY = Buffer.alloc(0)

/** Zero usage of `model`, counted: where every meter starts (here, so that usage.ts's factory imports meters and no meter imports it back). */
export function emptyUsage(model: string): Usage {
  return { prompt: 0, completion: 0, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 0, model, source: 'counted' }
}

/** A non-negative integer from a JSON value, or -1 (absent, null, or not a count: see ResponseMeter.count). */
export function count(v: unknown): number {
  return typeof v === 'number' && v >= 0 && Number.isFinite(v) ? Math.floor(v) : -1
}

export abstract class ResponseMeter implements UsageMeter {
  readonly rewrites: boolean
  protected readonly strip: boolean
  protected readonly model: string
  private readonly estimatedPrompt: number
  private readonly lazyPrompt: LazyPrompt | null
  /** SSE mode; null once the body turned out to be JSON */
  protected sse: SseSplitter | null
  /** JSON mode */
  protected body: JsonBody | null
  /** visible text sent to the client, and reasoning text (when a provider streams it) */
  readonly text = new DeliveredText()
  readonly thoughtText = new DeliveredText()

  // what the upstream reported, -1 where it said nothing; `seen` once any usage arrived
  protected seen = false
  protected rPrompt = -1
  protected rCompletion = -1
  protected rThoughts = -1
  protected rCached = -1
  protected rCacheWrite = -1
  protected rToolPrompt = -1
  protected rAudio = -1
  protected rTotal = -1
  /** a usage field held something other than a count (a string, a negative number): the usage is not trusted */
  protected invalid = false
  /** the body stopped decoding before its end */
  private failed = false
  private unreadableBody = false
  protected rModel = ''
  /** the last finish reason the upstream wrote ('' while none); `finishes` counts the events that carried one */
  protected rFinish = ''
  private finishes = 0
  /** the reported usage is the final one: the stream ended normally, or the upstream marked it last */
  protected final = false
  protected ended = false
  private first = true
  /** events parsed so far (the first always is: it names the model) */
  private parsed = 0
  /**
   * Data of events that carry no usage object, not parsed yet. Parsing every event was a third of the proxy's CPU on
   * an SSE stream (bench/README.md); when the upstream reports usage at the end, their text is never needed. They
   * are parsed only to count a cut stream, or when they grow past DEFER_MAX characters (memory stays bounded), and
   * dropped once the upstream's usage is final. (A usage-bearing event is parsed at once; when a stream mixes both
   * kinds and is then cut, its text is counted out of order: a segment-boundary difference of a token at most.)
   */
  private deferred: string[] = []
  private deferredChars = 0
  /** [start, end) pairs in the splitter's buffer to drop, for the chunk being written */
  private readonly skips: number[] = []
  private readonly out: Usage

  constructor(opts: MeterOptions, strippable: boolean) {
    this.strip = strippable && opts.stream && opts.stripUsageChunk
    this.rewrites = this.strip
    this.model = opts.model
    this.estimatedPrompt = opts.promptTokens
    this.lazyPrompt = opts.lazyPrompt ?? null
    this.sse = opts.stream ? new SseSplitter() : null
    this.body = opts.stream ? null : new JsonBody()
    this.out = emptyUsage(opts.model)
  }

  get finish(): string {
    return this.rFinish
  }

  get unknown(): UnknownReason | '' {
    return this.unreadableBody ? 'encoding' : this.invalid ? 'invalid' : ''
  }

  fail(): void {
    this.failed = true
  }

  unreadable(): void {
    this.unreadableBody = true
  }

  /**
   * A usage field as a count: -1 when absent or null (not reported); a value of any other type, or a negative or
   * non-finite number, marks the whole usage invalid: a server that writes `"prompt_tokens": "12"` or `-5` is not
   * one whose other numbers the limits should trust.
   */
  protected count(v: unknown): number {
    if (v === undefined || v === null) return -1
    const n = count(v)
    if (n < 0) this.invalid = true
    return n
  }

  /** The key of the usage object in a JSON body (`usage`, `usageMetadata`). */
  protected abstract readonly usageKey: string
  /** The key of the model name in a JSON body (`model`, `modelVersion`). */
  protected abstract readonly modelKey: string
  /** The key of the finish reason (`finish_reason`, `finishReason`, `stop_reason`); '' when the subclass reads it
      itself (Responses: the terminal event's status) */
  protected abstract readonly finishKey: string
  /** One parsed SSE data payload: collect delivered text, read usage. True when it is a usage-only chunk. */
  protected abstract onChunk(chunk: Record<string, any>): boolean
  /** Copy one usage object into the r* fields. */
  protected abstract readUsage(u: Record<string, any>): void

  /**
   * The usage of streams that carry a running count in every event (Gemini, DashScope): read it; it is the final
   * count in the event that finished the answer. Returns false: such an event is never a usage-only chunk.
   */
  protected runningUsage(c: Record<string, any>, finished: boolean): boolean {
    const u = c[this.usageKey]
    if (u !== null && typeof u === 'object') {
      this.readUsage(u)
      if (finished) this.final = true
    }
    return false
  }

  write(chunk: Buffer): Buffer {
    if (this.ended || chunk.length === 0) return chunk
    if (this.first) this.sniff(chunk)
    if (this.body !== null) {
      this.body.add(chunk)
      return chunk
    }
    const sse = this.sse!
    if (sse.overflowed) return chunk
    sse.push(chunk)
    const skips = this.skips
    skips.length = 0
    while (sse.next()) {
      if (this.onEvent(sse) && this.strip) skips.push(sse.start, sse.end)
    }
    if (!this.strip) return chunk
    const buf = sse.buf
    const upto = sse.consumed
    if (skips.length === 0) return upto === buf.length ? buf : buf.subarray(0, upto)
    return without(buf, upto, skips)
  }

  end(): Buffer {
    if (this.ended) return EMPTY
    this.ended = true
    if (this.body !== null) {
      this.readBody(this.body)
    } else if (this.sse !== null && this.sse.finish()) {
      // an event the upstream never closed with a blank line: still read it, forward it unless it is ours to drop
      const sse = this.sse
      const drop = this.onEvent(sse) && this.strip
      if (this.strip && !drop) return sse.raw()
    }
    if (this.seen) this.final = true
    // a stream without usage keeps its last events unparsed until usage() counts them: its finish reason is there
    if (this.rFinish === '') this.finishOfDeferred()
    return EMPTY
  }

  // the estimate's prompt tokens, counted exactly now if the estimate only bounded them (prompt_estimate: bytes)
  protected promptTokens(): number {
    return this.lazyPrompt === null ? this.estimatedPrompt : this.lazyPrompt.tokens()
  }

  usage(): Usage {
    const u = this.out
    u.model = this.rModel !== '' ? this.rModel : this.model
    u.cacheWrite = this.rCacheWrite >= 0 ? this.rCacheWrite : 0
    u.toolPrompt = this.rToolPrompt >= 0 ? this.rToolPrompt : 0
    u.audio = this.rAudio >= 0 ? this.rAudio : 0
    if (this.unreadableBody || this.invalid) {
      // nothing the proxy can stand behind: the account stage keeps the estimate charged
      u.source = 'unknown'
      u.prompt = this.promptTokens()
      u.completion = 0
      u.thoughts = 0
      u.cached = 0
      u.cacheWrite = 0
      u.toolPrompt = 0
      u.audio = 0
      u.total = u.prompt
      return u
    }
    if (this.final) {
      u.source = 'reported'
      u.prompt = this.rPrompt >= 0 ? this.rPrompt : this.promptTokens()
      u.completion = this.rCompletion >= 0 ? this.rCompletion : 0
      u.thoughts = this.rThoughts >= 0 ? this.rThoughts : 0
      u.cached = this.rCached >= 0 ? this.rCached : 0
      u.total = this.rTotal >= 0 ? this.rTotal : u.prompt + u.toolPrompt + u.completion
      return u
    }
    // counted: what the client was sent, plus reasoning the upstream reported so far (it is billed, never sent)
    this.parseDeferred()
    let visible = this.text.tokens()
    if (this.body !== null && this.countsBodyText) visible += countTokensSegmented(this.bodyText(this.body))
    const thoughts = Math.max(this.rThoughts, this.thoughtText.tokens())
    u.source = this.failed ? 'partial' : 'counted'
    u.prompt = this.rPrompt >= 0 ? this.rPrompt : this.promptTokens()
    u.thoughts = thoughts
    u.completion = visible + thoughts
    u.cached = this.rCached >= 0 ? this.rCached : 0
    u.total = u.prompt + u.toolPrompt + u.completion
    return u
  }

  /** A JSON body's text counts as output when the upstream reported no usage (false: embeddings, whose body is vectors). */
  protected countsBodyText = true

  /** SSE lines start with a field name or ':'; a body starting '{' or '[' is JSON whatever the caller thought. */
  private sniff(chunk: Buffer): void {
    let i = 0
    while (i < chunk.length && (chunk[i] === 0x20 || chunk[i] === 0x0a || chunk[i] === 0x0d || chunk[i] === 0x09)) i++
    if (i === chunk.length) return
    this.first = false
    const c = chunk[i]
    if (this.sse !== null && (c === 0x7b || c === 0x5b)) {
      this.sse = null
      this.body = new JsonBody()
    }
  }

  private onEvent(sse: SseSplitter): boolean {
    const data = sse.data()
    if (data === null) return false
    let i = 0
    while (i < data.length && data.charCodeAt(i) <= 0x20) i++
    if (data.charCodeAt(i) !== 0x7b) return false // `[DONE]`, plain text
    if (this.parsed > 0 && !hasObjectKey(data, this.usageKey)) {
      this.deferred.push(data)
      this.deferredChars += data.length
      if (this.deferredChars > DEFER_MAX) this.parseDeferred()
      return false
    }
    const finishes = this.finishes
    const usageOnly = this.parse(data)
    // the upstream's final count makes the deferred text moot: drop it unparsed — once its finish reason is read
    // (OpenAI's sits in the last content chunk, deferred, before the usage chunk), unless this newer event had one
    if (this.final && this.deferred.length > 0) {
      if (this.finishes === finishes) this.finishOfDeferred()
      this.deferred = []
      this.deferredChars = 0
    }
    return usageOnly
  }

  private parse(data: string): boolean {
    this.parsed++
    if (this.finishKey !== '') this.readFinish(data)
    const v = parseJson(data)
    return v !== null && typeof v === 'object' ? this.onChunk(v as Record<string, any>) : false
  }

  /** A finish reason in one event's (or a body's) text: the last one written; DashScope writes "null" while unfinished. */
  private readFinish(text: string): boolean {
    const f = stringAfterKey(text, this.finishKey, true)
    if (f === '' || f === 'null') return false
    this.setFinish(f)
    return true
  }

  protected setFinish(reason: string): void {
    this.rFinish = reason
    this.finishes++
  }

  private finishOfDeferred(): void {
    if (this.finishKey === '') return
    const list = this.deferred
    for (let i = list.length - 1; i >= 0; i--) if (this.readFinish(list[i])) return
  }

  private parseDeferred(): void {
    const list = this.deferred
    if (list.length === 0) return
    this.deferred = []
    this.deferredChars = 0
    for (let i = 0; i < list.length; i++) this.parse(list[i])
  }

  private readBody(body: JsonBody): void {
    const u = body.lastObject(this.usageKey)
    if (u !== null) this.readUsage(u)
    else {
      const v = body.parse()
      // a streamed JSON array (Gemini without alt=sse) carries the final usage in its last element
      const top = Array.isArray(v) ? v[v.length - 1] : v
      const inner = top !== null && typeof top === 'object' ? (top as Record<string, unknown>)[this.usageKey] : undefined
      if (inner !== null && typeof inner === 'object') this.readUsage(inner as Record<string, any>)
    }
    if (this.seen) {
      const m = body.stringField(this.modelKey)
      if (m !== '') this.rModel = m
    }
    this.finishOfBody(body)
  }

  /** A JSON body's finish reason: the last one in its tail (the last choice's, for n > 1). */
  protected finishOfBody(body: JsonBody): void {
    if (this.finishKey !== '') this.readFinish(body.tailText())
  }

  /** The text a JSON body delivered, read from what was kept of it (head and tail once it outgrew the copy). */
  private bodyText(body: JsonBody): string {
    return body.truncated ? partialTexts(body.headText()) + partialTexts(body.tailText()) : partialTexts(body.headText())
  }
}

const DEFER_MAX = 256 * 1024

/** `"key"`, built once per key: a string made per event would be searched as a fresh cons string each time */
const QUOTED = new Map<string, string>()
function quotedKey(key: string): string {
  let q = QUOTED.get(key)
  if (q === undefined) {
    q = `"${key}"`
    QUOTED.set(key, q)
  }
  return q
}

/** `data` has `"key"` followed by an object (`"usage":{`), not `"usage":null`: the event must be parsed. */
function hasObjectKey(data: string, key: string): boolean {
  const quoted = quotedKey(key)
  let at = data.indexOf(quoted)
  while (at >= 0) {
    let j = at + quoted.length
    while (j < data.length && data.charCodeAt(j) <= 0x20) j++
    if (data.charCodeAt(j) === 0x3a /* : */) {
      j++
      while (j < data.length && data.charCodeAt(j) <= 0x20) j++
      if (data.charCodeAt(j) === 0x7b /* { */) return true
    }
    at = data.indexOf(quoted, at + 1)
  }
  return false
}

/** buf[0, upto) without the given ranges: the one place stripping allocates, once per stream. */
function without(buf: Buffer, upto: number, skips: number[]): Buffer {
  let size = upto
  for (let i = 0; i < skips.length; i += 2) size -= skips[i + 1] - skips[i]
  const out = Buffer.allocUnsafe(size)
  let from = 0
  let at = 0
  for (let i = 0; i < skips.length; i += 2) {
    at += buf.copy(out, at, from, skips[i])
    from = skips[i + 1]
  }
  buf.copy(out, at, from, upto)
  return out
}
