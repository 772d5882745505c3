// The stub LLM upstream: OpenAI (chat, completions, embeddings, Responses), Gemini, Qwen (DashScope) and Anthropic
// (Messages) simulators on one node:http server, deterministic in (seed, request), with per-request knobs for
// latency and failures. Used by the proxy's tests, its benchmark
// (as the upstream: every response is prebuilt strings, one write when nothing is paced) and the default config.
import { EventEmitter } from 'node:events'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { bytes, echo, health } from './bulk.js'
import { Exchange, type ExchangeHost, StubRequest, StubResponse } from './exchange.js'
import { gemini, geminiModels, type GeminiAction } from './gemini.js'
import type { KnobDefaults } from './knobs.js'
import { chat, completions, embeddings, models } from './openai.js'
import { qwenNative } from './qwen.js'
import { responses } from './responses.js'
import { messages } from './anthropic.js'
import { resolveRoute, type StubProvider } from './routes.js'

export type { StubProvider } from './routes.js'

export interface StubOptions {
  /** seed of every generated text; when given, ids and timestamps are deterministic too (default 0, unseeded ids) */
  seed?: number
  /** delay before the first byte of a (non-error) response, ms (default 0) */
  ttftMs?: number
  /** pacing of generated tokens; 0 = as fast as possible (default 0) */
  tokensPerSecond?: number
  /** uniform random extra delay, 0..jitterMs, added to TTFT and to each paced chunk (default 0) */
  jitterMs?: number
  /** which provider's endpoints are served; the others answer 404 (default 'all') */
  provider?: StubProvider | 'all'
}

/** Payload of the 'request' event. */
export interface StubRequestEvent {
  method: string
  url: string
  /** as Node parsed them (lower-cased names) */
  headers: IncomingHttpHeaders
  /** name, value, name, value… exactly as received */
  rawHeaders: string[]
  /** the body (its first 16 MiB when larger) */
  body: Buffer
}

/** Payload of the 'aborted' event. */
export interface StubAbortedEvent {
  url: string
}

/** Payload of the 'backpressure' event: /__stub/bytes found the socket full after handing it `sent` bytes. */
export interface StubBackpressureEvent {
  url: string
  sent: number
}

/**
 * Events: 'request' (StubRequestEvent) once a request body has been read · 'aborted' (StubAbortedEvent) when a
 * client went away before its response ended · 'backpressure' (StubBackpressureEvent) from /__stub/bytes.
 */
export class StubServer extends EventEmitter implements ExchangeHost {
  readonly defaults: KnobDefaults
  readonly provider: StubProvider | 'all'
  closing = false
  private readonly http: Server<typeof StubRequest, typeof StubResponse>

  constructor(opts: StubOptions = {}) {
    super()
    this.defaults = {
      seed: opts.seed === undefined ? 0 : opts.seed >>> 0,
      seeded: opts.seed !== undefined,
      ttftMs: nonNegative(opts.ttftMs, 'ttftMs'),
      tokensPerSecond: nonNegative(opts.tokensPerSecond, 'tokensPerSecond'),
      jitterMs: nonNegative(opts.jitterMs, 'jitterMs'),
    }
    this.provider = opts.provider ?? 'all'
    this.http = createServer(
      // lenient on purpose: the stub must answer whatever a proxy under test forwards, Host or not
      { IncomingMessage: StubRequest, ServerResponse: StubResponse, requireHostHeader: false },
      this.onRequest.bind(this),
    )
    // Behind a proxy's keep-alive pool: outlive its idle timeout (Node's 5 s default would race it and surface as
    // resets), and never cut a slow first token (requestTimeout defaults to 300 s, headersTimeout must exceed
    // keepAliveTimeout).
    this.http.keepAliveTimeout = 65_000
    this.http.headersTimeout = 66_000
    this.http.requestTimeout = 0
    this.http.maxRequestsPerSocket = 0
  }

  /** Listens on TCP; resolves with the bound port (port 0 = a free one). */
  listen(port: number, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(port, host, () => {
        this.http.off('error', reject)
        resolve((this.http.address() as AddressInfo).port)
      })
    })
  }

  /** Listens on a unix socket path. */
  listenUnix(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(path, () => {
        this.http.off('error', reject)
        resolve()
      })
    })
  }

  /** Stops listening and ends every connection, open streams included (their timers with them). */
  close(): Promise<void> {
    this.closing = true
    return new Promise((resolve) => {
      this.http.close(() => resolve())
      this.http.closeAllConnections()
    })
  }

  aborted(ex: Exchange): void {
    this.emit('aborted', { url: ex.url } satisfies StubAbortedEvent)
  }

  backpressure(ex: Exchange, sent: number): void {
    if (this.listenerCount('backpressure') > 0) this.emit('backpressure', { url: ex.url, sent } satisfies StubBackpressureEvent)
  }

  private onRequest(req: StubRequest, res: StubResponse): void {
    const ex = new Exchange(this, req, res)
    req.exchange = ex
    res.exchange = ex
    resolveRoute(ex.path, this.provider, ex)
    res.on('close', onResponseClose)
    req.on('data', onRequestData)
    req.on('end', onRequestEnd)
  }

  received(ex: Exchange): void {
    const knobs = ex.endBody()
    if (this.listenerCount('request') > 0) {
      const req = ex.req
      this.emit('request', { method: ex.method, url: ex.url, headers: req.headers, rawHeaders: req.rawHeaders, body: ex.body } satisfies StubRequestEvent)
    }
    // one boundary, one try: whatever a renderer throws becomes one 500, never a dead stub
    try {
      switch (knobs.fault) {
        case 'status':
          ex.error(knobs.faultStatus, knobs.faultUnknown === '' ? undefined : 'unknown x-stub-error value: ' + knobs.faultUnknown)
          return
        case 'reset':
          ex.reset()
          return
      }
      this.render(ex)
      ex.send()
    } catch (err) {
      if (!ex.res.headersSent) ex.error(500, 'stub failure: ' + (err instanceof Error ? err.message : String(err)))
      else ex.res.destroy()
    }
  }

  private render(ex: Exchange): void {
    const route = ex.route
    if (route.kind === 'not-found') {
      ex.error(404, 'Unknown request URL: ' + ex.method + ' ' + ex.path)
      return
    }
    if (route.method !== null && route.method !== ex.method) {
      ex.error(405, 'Method ' + ex.method + ' not allowed on ' + ex.path)
      return
    }
    let body: unknown = null
    if (route.json) {
      if (ex.bodyTruncated) {
        ex.error(413)
        return
      }
      try {
        body = JSON.parse(ex.body.toString('utf8'))
      } catch {
        ex.error(400, 'We could not parse the JSON body of your request.')
        return
      }
    }
    switch (route.kind) {
      case 'openai-chat':
        return chat(ex, body, 'openai')
      case 'qwen-chat':
        return chat(ex, body, 'qwen')
      case 'openai-completions':
        return completions(ex, body)
      case 'openai-embeddings':
        return embeddings(ex, body, 'openai')
      case 'openai-responses':
        return responses(ex, body)
      case 'anthropic-messages':
        return messages(ex, body)
      case 'qwen-embeddings':
        return embeddings(ex, body, 'qwen')
      case 'openai-models':
        return models(ex, 'openai', ex.arg)
      case 'qwen-models':
        return models(ex, 'qwen', ex.arg)
      case 'qwen-native':
        return qwenNative(ex, body, ex.req.headers['x-dashscope-sse'] === 'enable')
      case 'gemini':
        return gemini(ex, body, ex.arg as GeminiAction, ex.query.includes('alt=sse'))
      case 'gemini-models':
        return geminiModels(ex)
      case 'bytes':
        return bytes(ex)
      case 'echo':
        return echo(ex)
      case 'health':
        return health(ex)
      default: {
        const never: never = route.kind
        throw new Error('unhandled route ' + String(never))
      }
    }
  }
}

function nonNegative(v: number | undefined, name: string): number {
  if (v === undefined) return 0
  if (!Number.isFinite(v) || v < 0) throw new RangeError('StubOptions.' + name + ' must be a non-negative number')
  return v
}

// Listeners are module functions reaching their exchange through `this`: no closures per request.
function onRequestData(this: StubRequest, chunk: Buffer): void {
  this.exchange!.addChunk(chunk)
}

function onRequestEnd(this: StubRequest): void {
  const ex = this.exchange!
  ex.host.received(ex)
}

function onResponseClose(this: StubResponse): void {
  this.exchange!.closed()
}
