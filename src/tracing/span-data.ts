// What a worker hands the exporter for one finished span: plain data that survives postMessage (structured clone),
// so the OpenTelemetry SDK objects are built on the generation's main thread only (export.ts). Times are epoch
// milliseconds (performance.timeOrigin + performance.now(), fractions kept), ids lower-case hex.

export type AttrValue = string | number | boolean | string[]
export type Attrs = Record<string, AttrValue>

export interface EventData {
  name: string
  time: number
  attrs: Attrs | null
}

/** SpanKind of @opentelemetry/api, as numbers (SERVER, CLIENT): the worker does not load the API package. */
export const KIND_SERVER = 1
export const KIND_CLIENT = 2

/** SpanStatusCode of @opentelemetry/api. */
export const STATUS_UNSET = 0
export const STATUS_ERROR = 2

export interface SpanData {
  traceId: string
  spanId: string
  /** '' for a root span */
  parentSpanId: string
  /** the incoming tracestate, carried as the span's trace state */
  traceState: string
  name: string
  kind: number
  start: number
  end: number
  status: number
  message: string
  attrs: Attrs
  events: EventData[] | null
}

/** Worker → generation main thread: finished spans, and malformed traceparent headers seen since the last batch. */
export interface SpanBatch {
  type: 'spans'
  spans: SpanData[]
  invalid: number
}
