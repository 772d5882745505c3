// The generation's one span exporter (main thread): the workers post finished spans here (sink.ts), they wait in a
// bounded queue, and batches go to the collector through the official OTLP/HTTP protobuf exporter, one export in
// flight at a time. A full queue drops new spans and counts them; a failed export drops its batch and counts it.
// Nothing here is on a request's path: a slow or dead collector costs spans, never a request's time.
// Per-worker SDK exporters were measured against this design: bench/micro/tracing-export.mjs, README "Tracing".
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { resourceFromAttributes } from '@opentelemetry/resources'
import type { Config } from '../config/index.js'
import type { Logger } from '../observability/logger.js'
import type { SpanBatch, SpanData } from './span-data.js'
import { toReadable, type Scope } from './readable.js'

type Section = NonNullable<Config['tracing']>

/** spans per export request (the SDK's BatchSpanProcessor default) */
const BATCH = 512
/** a batch smaller than BATCH leaves after this long (the SDK's scheduledDelayMillis default is 5 s; 1 s keeps traces fresh) */
const DELAY_MS = 1000

export interface TracingCounters {
  /** spans dropped: queue full, export failed, or tracing switched off while they were on their way */
  dropped: number
  /** export requests that failed (after the exporter's own retries) */
  exportErrors: number
  exported: number
  /** malformed incoming traceparent headers (replaced by a new trace) */
  invalid: number
}

/** The traces URL: the config's endpoint (a base URL gets /v1/traces), else the exporter's env vars and default. */
export function tracesUrl(section: Section, env: NodeJS.ProcessEnv = process.env): string {
  const e = section.endpoint
  if (e !== undefined) return e.replace(/\/+$/, '').endsWith('/v1/traces') ? e : `${e.replace(/\/+$/, '')}/v1/traces`
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()
  if (traces) return traces
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim()
  if (base) return `${base.replace(/\/+$/, '')}/v1/traces`
  return 'http://localhost:4318/v1/traces'
}

/** The URL for a log line: a password in it (https://user:secret@…) is not logged. */
function shown(url: string): string {
  return url.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@')
}

export class SpanExport {
  readonly counters: TracingCounters = { dropped: 0, exportErrors: 0, exported: 0, invalid: 0 }
  readonly #logger: Logger
  readonly #version: string
  #key = 'null'
  #exporter: OTLPTraceExporter | null = null
  #url = ''
  #scope: Scope | null = null
  #max = 0
  /** queued spans that start an export at once: a batch, or half the queue when that is smaller */
  #eager = BATCH
  #queue: SpanData[] = []
  #inFlight: Promise<void> | null = null
  #timer: NodeJS.Timeout | null = null
  #failing = false

  constructor(logger: Logger, version: string) {
    this.#logger = logger
    this.#version = version
  }

  get enabled(): boolean {
    return this.#exporter !== null
  }

  /**
   * Apply the tracing section (start and every reload). Sampling is the workers' business: a reload that changes only
   * sample, parent_based or sample_denied keeps exporter, queue and state here.
   */
  configure(section: Config['tracing'], env: NodeJS.ProcessEnv = process.env): void {
    const key = section === undefined ? 'null'
      : JSON.stringify([section.endpoint, section.headers, section.service_name, section.timeout, section.max_queue])
    if (key === this.#key) return
    this.#key = key
    const old = this.#exporter
    if (section === undefined) {
      this.#exporter = null
      this.counters.dropped += this.#queue.length
      this.#queue = []
      this.#logger.info({ msg: 'tracing off' })
    } else {
      this.#url = tracesUrl(section, env)
      this.#exporter = new OTLPTraceExporter({ url: this.#url, headers: section.headers, timeoutMillis: section.timeout })
      this.#max = section.max_queue
      this.#eager = Math.min(BATCH, Math.max(1, section.max_queue >> 1))
      const service = section.service_name ?? (env.OTEL_SERVICE_NAME?.trim() || 'leaky-tokens')
      this.#scope = {
        resource: resourceFromAttributes({ 'service.name': service, 'service.version': this.#version }),
        scope: { name: 'leaky-tokens', version: this.#version },
      }
      this.#failing = false
      this.#logger.info({ msg: 'tracing on', endpoint: shown(this.#url), service_name: service, max_queue: this.#max })
      const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? '').trim()
      if (protocol !== '' && protocol !== 'http/protobuf') {
        this.#logger.warn({ msg: 'OTEL_EXPORTER_OTLP_PROTOCOL ignored: spans are exported as OTLP/HTTP protobuf', protocol })
      }
    }
    // the old exporter finishes the export it has in flight (if any), then closes its connections
    if (old !== null) void (this.#inFlight ?? Promise.resolve()).then(() => old.shutdown()).catch(() => undefined)
  }

  /** A worker's batch (never throws: a bad batch would otherwise take the generation's message handler down). */
  take(b: SpanBatch): void {
    this.counters.invalid += b.invalid
    const spans = b.spans
    if (this.#exporter === null) {
      this.counters.dropped += spans.length
      return
    }
    const room = this.#max - this.#queue.length
    const n = Math.min(room, spans.length)
    for (let i = 0; i < n; i++) this.#queue.push(spans[i])
    if (n < spans.length) this.counters.dropped += spans.length - n
    if (this.#queue.length >= this.#eager) this.#send()
    else this.#arm()
  }

  #arm(): void {
    if (this.#timer !== null || this.#queue.length === 0) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#send()
    }, DELAY_MS)
    this.#timer.unref()
  }

  #send(): void {
    const exporter = this.#exporter
    if (this.#inFlight !== null || exporter === null || this.#queue.length === 0) return
    if (this.#timer !== null) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    const batch = this.#queue.length <= BATCH ? this.#queue : this.#queue.slice(0, BATCH)
    this.#queue = batch === this.#queue ? [] : this.#queue.slice(BATCH)
    const scope = this.#scope!
    this.#inFlight = new Promise<void>((resolve) => {
      try {
        const spans = batch.map((d) => toReadable(d, scope))
        exporter.export(spans, (r) => {
          this.#done(r.code === 0, spans.length, r.error)
          resolve()
        })
      } catch (err) {
        // a span the SDK cannot take (it should not happen): that batch is lost, counted, the exporter goes on
        this.#done(false, batch.length, err as Error)
        resolve()
      }
    })
  }

  #done(ok: boolean, n: number, err: Error | undefined): void {
    this.#inFlight = null
    if (ok) {
      this.counters.exported += n
      if (this.#failing) {
        this.#failing = false
        this.#logger.info({ msg: 'tracing export recovered', endpoint: shown(this.#url) })
      }
    } else {
      this.counters.exportErrors++
      this.counters.dropped += n
      // once per transition: a dead collector must not flood the log, leaky_tracing_export_errors_total counts
      if (!this.#failing) {
        this.#failing = true
        this.#logger.warn({ msg: 'tracing export failing; spans are dropped until it recovers', endpoint: shown(this.#url), error: err?.message ?? 'unknown' })
      }
    }
    if (this.#queue.length >= this.#eager) this.#send()
    else this.#arm()
  }

  /** Export what is queued (stop, upgrade): batches until empty or `deadlineMs`; what is left is dropped, counted. */
  async shutdown(deadlineMs = 2000): Promise<void> {
    const end = performance.now() + deadlineMs
    while (this.#exporter !== null && (this.#queue.length > 0 || this.#inFlight !== null) && performance.now() < end) {
      if (this.#inFlight === null) this.#send()
      const flight = this.#inFlight
      if (flight === null) break
      await Promise.race([flight, new Promise((r) => setTimeout(r, Math.max(1, end - performance.now())).unref())])
    }
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.counters.dropped += this.#queue.length
    this.#queue = []
    const ex = this.#exporter
    this.#exporter = null
    await ex?.shutdown().catch(() => undefined)
  }
}
