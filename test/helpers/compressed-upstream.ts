// An LLM upstream that compresses whatever the request accepted — a provider behind a CDN, or a server that ignores
// Accept-Encoding — for the tests of the proxy's decoding (test/e2e/compression.test.ts). A plain node:http server
// on a free port that answers OpenAI chat (JSON, or SSE with the usage-only chunk when the request asked for
// include_usage) and Gemini streamGenerateContent as one JSON array (no alt=sse), with usage numbers of its own.
//
// How it answers is read from request headers the proxy passes through:
//   x-up-coding   gzip (default) | x-gzip | deflate (zlib-wrapped) | deflate-raw (raw deflate labelled `deflate`) |
//                 br | zstd (gzip bytes labelled `zstd`: a coding the proxy does not decode) | list (`gzip, br`) |
//                 twice (two Content-Encoding headers) | identity
//   x-up-fault    truncate (the compressed body cut at 60 %, framing intact) | garbage (random bytes labelled with
//                 the coding) | empty (a compressed stream of no bytes)
//   x-up-usage    string (`"prompt_tokens":"12"`) | negative (`-5`)
//   x-up-events   content events of an SSE answer (default 6); x-up-words words per event (default 3)
//   x-up-hold     SSE: send this many events (compressed, flushed), then hold the response open until the client
//                 goes away ('aborted' is emitted with the request seen)
//   x-up-first    bytes of the first piece on the wire (default 3): the first read of the compressed stream is short
//
// The compressed bytes go out in several writes that cut the compressed stream at arbitrary points (each write
// waits until the previous one reached the socket). Every request is recorded in `seen`, with the plain body the
// upstream produced and the usage event it sent, so a test can compare the client's bytes exactly.
import http from 'node:http'
import zlib from 'node:zlib'
import { EventEmitter, once } from 'node:events'
import type { AddressInfo } from 'node:net'

export interface Seen {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  body: string
  /** the uncompressed body this upstream answered (what a client of an identity upstream would get) */
  plain: Buffer
  /** the bytes it put on the wire (compressed, cut when truncated) */
  wire: Buffer
  /** the SSE usage-only event, exactly as sent (`data: {...}\n\n`), or '' */
  usageEvent: string
  /** the usage object it reported */
  usage: Record<string, unknown> | null
  /** the client went away before the response ended */
  aborted: boolean
}

export const OPENAI_MODEL = 'gpt-4o-mini-2024-07-18'
export const GEMINI_MODEL = 'gemini-2.5-flash-001'

/** The usage the upstream reports for OpenAI chat: prompt 37 (5 cached), completion 23 (4 reasoning). */
export function openaiUsage(kind: string): Record<string, unknown> {
  const prompt: unknown = kind === 'string' ? '12' : kind === 'negative' ? -5 : 37
  return {
    prompt_tokens: prompt, completion_tokens: 23, total_tokens: 60,
    prompt_tokens_details: { cached_tokens: 5 }, completion_tokens_details: { reasoning_tokens: 4 },
  }
}

/** Gemini's: prompt 19, candidates 31, thoughts 7, tool-use prompt 3, total 60 (running counts before the last). */
export const GEMINI_USAGE = { promptTokenCount: 19, candidatesTokenCount: 31, thoughtsTokenCount: 7, toolUsePromptTokenCount: 3, totalTokenCount: 60 }

const WORDS = ['leaky', 'bucket', 'drains', 'tokens', 'at', 'a', 'steady', 'pace', 'while', 'gzip', 'squeezes', 'bytes']

function words(i: number, n: number): string {
  let s = ''
  for (let k = 0; k < n; k++) s += WORDS[(i * 7 + k * 3) % WORDS.length] + ' '
  return s
}

/** Deterministic bytes that are no valid gzip, zlib, raw deflate or brotli stream. */
export function garbage(n: number): Buffer {
  const b = Buffer.alloc(n)
  let x = 0x9e3779b9
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  // not a gzip magic, not a zlib header (CM 8), and brotli rejects it early
  b[0] = 0xff
  b[1] = 0xff
  return b
}

function compressor(coding: string): zlib.Gzip | zlib.Deflate | zlib.DeflateRaw | zlib.BrotliCompress | null {
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
    case 'zstd':
    case 'list':
    case 'twice':
      return zlib.createGzip()
    case 'deflate':
      return zlib.createDeflate()
    case 'deflate-raw':
      return zlib.createDeflateRaw()
    case 'br':
      return zlib.createBrotliCompress()
    default:
      return null
  }
}

function label(coding: string): string | string[] | undefined {
  switch (coding) {
    case 'identity':
      return undefined
    case 'deflate-raw':
      return 'deflate'
    case 'list':
      return 'gzip, br'
    case 'twice':
      return ['gzip', 'br']
    default:
      return coding
  }
}

/**
 * Compress `units` in one stream, flushing after each (how a server compresses a stream it sends as it goes):
 * the compressed output of each unit, in order; the last one also holds the stream's end.
 */
async function compress(coding: string, units: Buffer[]): Promise<Buffer[]> {
  const z = compressor(coding)
  if (z === null) return units
  const out: Buffer[] = []
  let got: Buffer[] = []
  z.on('data', (d: Buffer) => got.push(d))
  for (const u of units) {
    z.write(u)
    await new Promise<void>((r) => z.flush(() => r()))
    out.push(Buffer.concat(got))
    got = []
  }
  z.end()
  await once(z, 'end')
  if (got.length > 0) out.push(Buffer.concat(got))
  return out.filter((b) => b.length > 0)
}

/** Cut each piece in two at an uneven point, the first piece of all after `first` bytes. */
function cut(pieces: Buffer[], first: number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]
    const at = i === 0 ? Math.min(first, p.length) : Math.floor(p.length * 0.37)
    if (at > 0 && at < p.length) out.push(p.subarray(0, at), p.subarray(at))
    else out.push(p)
  }
  return out
}

function write(res: http.ServerResponse, b: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (b.length === 0) return resolve()
    res.write(b, () => setImmediate(resolve))
  })
}

function openaiJson(usage: Record<string, unknown>): Buffer[] {
  const head = `{"id":"chatcmpl-z1","object":"chat.completion","created":1700000000,"model":"${OPENAI_MODEL}","choices":[{"index":0,"message":{"role":"assistant","content":"${words(1, 20).trim()}"},`
  const tail = `"finish_reason":"stop"}],"usage":${JSON.stringify(usage)},"system_fingerprint":"fp_z"}`
  // three units: the answer, then the usage apart, so a cut lands in different places of the JSON
  const mid = Math.floor(head.length / 2)
  return [Buffer.from(head.slice(0, mid)), Buffer.from(head.slice(mid)), Buffer.from(tail)]
}

function openaiSse(events: number, perEvent: number, usage: Record<string, unknown> | null): { units: Buffer[]; usageEvent: string } {
  const u = usage === null ? '' : ',"usage":null'
  const chunk = (delta: string, finish: string | null) =>
    `data: {"id":"chatcmpl-z1","object":"chat.completion.chunk","created":1700000000,"model":"${OPENAI_MODEL}","system_fingerprint":"fp_z","choices":[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]${u}}\n\n`
  const units: string[] = [chunk('{"role":"assistant","content":""}', null)]
  for (let i = 0; i < events; i++) units.push(chunk(JSON.stringify({ content: words(i, perEvent) }), null))
  units.push(chunk('{}', 'stop'))
  let usageEvent = ''
  if (usage !== null) {
    usageEvent = `data: {"id":"chatcmpl-z1","object":"chat.completion.chunk","created":1700000000,"model":"${OPENAI_MODEL}","system_fingerprint":"fp_z","choices":[],"usage":${JSON.stringify(usage)}}\n\n`
    units.push(usageEvent)
  }
  units.push('data: [DONE]\n\n')
  return { units: units.map((s) => Buffer.from(s)), usageEvent }
}

function geminiArray(events: number): Buffer[] {
  const el = (i: number, last: boolean) => {
    const cand: Record<string, unknown> = { content: { parts: [{ text: words(i, 4) }], role: 'model' }, index: 0 }
    if (last) cand.finishReason = 'STOP'
    const usage = last ? GEMINI_USAGE : { promptTokenCount: GEMINI_USAGE.promptTokenCount, candidatesTokenCount: i * 4, totalTokenCount: GEMINI_USAGE.promptTokenCount + i * 4 }
    return JSON.stringify({ candidates: [cand], usageMetadata: usage, modelVersion: GEMINI_MODEL, responseId: 'r-z1' }, null, 2)
  }
  const units: string[] = []
  for (let i = 0; i < events; i++) units.push((i === 0 ? '[' : ',\r\n') + el(i, i === events - 1))
  units.push(']')
  return units.map((s) => Buffer.from(s))
}

export class CompressedUpstream extends EventEmitter {
  readonly server: http.Server
  readonly seen: Seen[] = []
  origin = ''

  constructor() {
    super()
    this.server = http.createServer((req, res) => {
      const parts: Buffer[] = []
      req.on('data', (d: Buffer) => parts.push(d))
      req.on('end', () => {
        this.answer(req, res, Buffer.concat(parts).toString()).catch((err: Error) => {
          res.destroy(err)
        })
      })
    })
  }

  async listen(): Promise<string> {
    this.server.listen(0, '127.0.0.1')
    await once(this.server, 'listening')
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this.origin
  }

  /** The request recorded with this x-request-id. */
  request(id: string): Seen {
    const s = this.seen.find((x) => x.headers['x-request-id'] === id)
    if (s === undefined) throw new Error(`the upstream saw no request ${id}`)
    return s
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((r) => this.server.close(() => r()))
  }

  private async answer(req: http.IncomingMessage, res: http.ServerResponse, body: string): Promise<void> {
    const h = (k: string) => {
      const v = req.headers[k]
      return typeof v === 'string' ? v : ''
    }
    const coding = h('x-up-coding') || 'gzip'
    const fault = h('x-up-fault')
    const usageKind = h('x-up-usage')
    const events = Number(h('x-up-events') || 6)
    const perEvent = Number(h('x-up-words') || 3)
    const hold = Number(h('x-up-hold') || 0)
    const first = Number(h('x-up-first') || 3)
    const seen: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, plain: Buffer.alloc(0), wire: Buffer.alloc(0), usageEvent: '', usage: null, aborted: false }
    this.seen.push(seen)
    res.on('close', () => {
      if (res.writableFinished) return
      seen.aborted = true
      this.emit('aborted', seen)
    })

    let parsed: Record<string, any> = {}
    try {
      parsed = JSON.parse(body)
    } catch {}
    let units: Buffer[]
    let type = 'application/json'
    const gemini = (req.url ?? '').includes(':streamGenerateContent')
    if (gemini) {
      units = geminiArray(events)
      seen.usage = GEMINI_USAGE
    } else if (parsed.stream === true) {
      type = 'text/event-stream; charset=utf-8'
      const usage = parsed.stream_options?.include_usage === true ? openaiUsage(usageKind) : null
      const sse = openaiSse(events, perEvent, usage)
      units = sse.units
      seen.usageEvent = sse.usageEvent
      seen.usage = usage
    } else {
      seen.usage = openaiUsage(usageKind)
      units = openaiJson(seen.usage)
    }
    if (fault === 'empty') units = []
    seen.plain = Buffer.concat(units)

    // an array value is sent as that many header lines
    const headers: Record<string, string | string[]> = { 'content-type': type, vary: 'Accept-Encoding' }
    const ce = label(coding)
    if (ce !== undefined) headers['content-encoding'] = ce

    if (hold > 0) {
      // a stream under way: the first events now, then nothing until the client goes away
      res.writeHead(200, headers)
      const pieces = await compress(coding, [Buffer.concat(units.slice(0, hold)), ...units.slice(hold)])
      seen.wire = Buffer.concat(pieces.slice(0, 1))
      await write(res, pieces[0])
      return
    }

    let pieces = cut(await compress(coding, units), first)
    if (fault === 'garbage') pieces = [garbage(600).subarray(0, 200), garbage(600).subarray(200)]
    else if (fault === 'truncate') {
      const all = Buffer.concat(pieces)
      const keep = all.subarray(0, Math.floor(all.length * 0.6))
      pieces = [keep.subarray(0, Math.floor(keep.length / 2)), keep.subarray(Math.floor(keep.length / 2))]
    }
    seen.wire = Buffer.concat(pieces)
    // an OpenAI JSON answer says its length; a stream (SSE, Gemini's array) goes chunked
    if (type === 'application/json' && !gemini) headers['content-length'] = String(seen.wire.length)
    res.writeHead(200, headers)
    for (const p of pieces) await write(res, p)
    res.end()
  }
}

export async function startCompressedUpstream(): Promise<CompressedUpstream> {
  const up = new CompressedUpstream()
  await up.listen()
  return up
}
