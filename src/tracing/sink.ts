// A worker's outbox of finished spans. They go to the generation's main thread in batches (one postMessage per
// BATCH spans or per FLUSH_MS, whichever comes first), where one exporter serialises and sends them
// (export.ts); bench/micro/tracing-export.mjs measures why one exporter beats an SDK per worker. The outbox never
// holds more than BATCH spans: a full batch is posted at once, and the bounded queue that drops is the exporter's.
import type { SpanBatch, SpanData } from './span-data.js'

const BATCH = 64
const FLUSH_MS = 200

let post: ((b: SpanBatch) => void) | null = null
let spans: SpanData[] = []
let invalid = 0
let timer: NodeJS.Timeout | null = null

/** The worker thread says where batches go (its parentPort); until then spans are discarded. */
export function connectSink(to: (b: SpanBatch) => void): void {
  post = to
}

export function pushSpan(d: SpanData): void {
  spans.push(d)
  if (spans.length >= BATCH) flushSpans()
  else arm()
}

/** A malformed incoming traceparent: counted here, reported with the next batch. */
export function countInvalid(): void {
  invalid++
  arm()
}

function arm(): void {
  if (timer !== null) return
  timer = setTimeout(flushSpans, FLUSH_MS)
  timer.unref()
}

/** Post what is waiting now (also on drain: a worker's last spans must leave before the thread ends). */
export function flushSpans(): void {
  if (timer !== null) {
    clearTimeout(timer)
    timer = null
  }
  if (spans.length === 0 && invalid === 0) return
  const b: SpanBatch = { type: 'spans', spans, invalid }
  spans = []
  invalid = 0
  if (post !== null) post(b)
}
