// A real OTLP/HTTP trace receiver in the test's process: node:http on a free port, POST /v1/traces bodies decoded
// as ExportTraceServiceRequest with the protobufjs root generated from the official opentelemetry-proto
// definitions (shipped by @opentelemetry/otlp-transformer 0.52, installed as the dev alias otlp-transformer-052).
import http from 'node:http'
import { request } from 'undici'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { scrapeMetrics, metricValue, type Proxy } from './proxy.js'

const require = createRequire(import.meta.url)
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const root = require('otlp-transformer-052/build/src/generated/root.js') as any
const Request = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest

export type Attr = string | number | boolean | Attr[]

export interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId: string
  traceState: string
  name: string
  /** 1 internal, 2 server, 3 client (OTLP's SpanKind, one more than the API's) */
  kind: number
  startNs: bigint
  endNs: bigint
  status: { code: number; message: string }
  attrs: Record<string, Attr>
  events: Array<{ name: string; timeNs: bigint; attrs: Record<string, Attr> }>
  resource: Record<string, Attr>
  scope: string
}

function hex(b: Uint8Array | undefined): string {
  return b === undefined ? '' : Buffer.from(b).toString('hex')
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function value(v: any): Attr {
  if (v.stringValue !== undefined) return v.stringValue
  if (v.boolValue !== undefined) return v.boolValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.doubleValue !== undefined) return v.doubleValue
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(value)
  return ''
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function attrs(list: any[] | undefined): Record<string, Attr> {
  const out: Record<string, Attr> = {}
  for (const kv of list ?? []) out[kv.key] = value(kv.value)
  return out
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = []
  /** export requests received (each answered 200 unless `status` says otherwise) */
  requests = 0
  contentTypes = new Set<string>()
  headers: http.IncomingHttpHeaders[] = []
  /** the HTTP status to answer with (200 = accepted) */
  status = 200
  /** a collector that hangs: requests are read and never answered (until close) */
  hang = false
  port = 0
  readonly #server: http.Server
  #waiters: Array<() => void> = []

  constructor() {
    this.#server = http.createServer((req, res) => {
      const parts: Buffer[] = []
      req.on('data', (d: Buffer) => parts.push(d))
      req.on('end', () => {
        this.requests++
        if (this.hang) return
        this.contentTypes.add(String(req.headers['content-type']))
        this.headers.push(req.headers)
        if (this.status === 200) this.#take(Buffer.concat(parts))
        res.writeHead(this.status, { 'content-type': 'application/x-protobuf' })
        res.end()
        const w = this.#waiters
        this.#waiters = []
        for (const f of w) f()
      })
    })
  }

  #take(body: Buffer): void {
    const msg = Request.toObject(Request.decode(body), { longs: String, defaults: false })
    for (const rs of msg.resourceSpans ?? []) {
      const resource = attrs(rs.resource?.attributes)
      for (const ss of rs.scopeSpans ?? []) {
        for (const sp of ss.spans ?? []) {
          this.spans.push({
            traceId: hex(sp.traceId),
            spanId: hex(sp.spanId),
            parentSpanId: hex(sp.parentSpanId),
            traceState: sp.traceState ?? '',
            name: sp.name,
            kind: sp.kind ?? 0,
            startNs: BigInt(sp.startTimeUnixNano ?? 0),
            endNs: BigInt(sp.endTimeUnixNano ?? 0),
            status: { code: sp.status?.code ?? 0, message: sp.status?.message ?? '' },
            attrs: attrs(sp.attributes),
            // eslint-disable-next-line @typescript-eslint/no-explicit-any
            events: (sp.events ?? []).map((e: any) => ({ name: e.name, timeNs: BigInt(e.timeUnixNano ?? 0), attrs: attrs(e.attributes) })),
            resource,
            scope: ss.scope?.name ?? '',
          })
        }
      }
    }
  }

  async listen(port = 0): Promise<number> {
    await new Promise<void>((r) => this.#server.listen(port, '127.0.0.1', r))
    this.port = (this.#server.address() as AddressInfo).port
    return this.port
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** Resolve once `pred` holds over what has arrived (checked after every export request). */
  async until(pred: () => boolean, timeoutMs = 15_000): Promise<void> {
    const end = Date.now() + timeoutMs
    while (!pred()) {
      if (Date.now() > end) throw new Error(`OTLP receiver: condition not met within ${timeoutMs} ms (${this.spans.length} spans so far)`)
      await new Promise<void>((r) => {
        const t = setTimeout(r, end - Date.now())
        this.#waiters.push(() => (clearTimeout(t), r()))
      })
    }
  }

  /** The spans of one trace. */
  trace(traceId: string): ReceivedSpan[] {
    return this.spans.filter((s) => s.traceId === traceId)
  }

  /** Stop listening first, then cut every connection: a keep-alive exporter cannot slip a new one in between. */
  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.#server.close(() => r()))
    this.#server.closeAllConnections()
    await closed
  }
}

/** The proxy's /metrics text once `name` has reached `min` (polled; throws after `timeoutMs`). */
export async function metricsWhen(p: Proxy, name: string, min: number, timeoutMs = 20_000): Promise<string> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const m = await scrapeMetrics(p)
    if (metricValue(m, name) >= min) return m
    if (Date.now() > end) throw new Error(`${name} stayed below ${min} for ${timeoutMs} ms (${metricValue(m, name)})`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** A one-worker proxy config on `origin` (an OpenAI stub) with this `tracing:` section (YAML flow text). */
export const tracingConfig = (origin: string, tracing: string) => `listen: 127.0.0.1:0
workers: 1
drain_timeout: 2s
admin: { listen: 127.0.0.1:0 }
log: { level: info, access: false }
tracing: ${tracing}
upstreams:
  llm: { provider: openai, targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: llm }
`

/** One small chat completion through the proxy; its status once the body is read. */
export function postChat(p: Proxy, headers: Record<string, string> = {}): Promise<number> {
  return request(p.url('/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":8}',
  }).then(async (r) => {
    await r.body.dump()
    return r.statusCode
  })
}

/** Run `count` requests, `conc` at a time; `each(i)` after the i-th response. Returns the statuses. */
export async function load(count: number, conc: number, send: (i: number) => Promise<number>, each?: (done: number) => void | Promise<void>): Promise<number[]> {
  const out: number[] = []
  let next = 0
  let done = 0
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < count) {
      const i = next++
      out[i] = await send(i)
      done++
      await each?.(done)
    }
  }))
  return out
}
