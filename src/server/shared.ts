// The SharedArrayBuffers a generation's main thread creates once and every worker thread attaches to: the only
// state workers share, updated with Atomics and never with messages. One field per capability.
export interface SharedBuffers {
  /** Int32 words: [0] requests in flight across all workers (the admit gate) */
  inflight: SharedArrayBuffer
  /** the limiter's bucket table (src/limiter/table.ts); null until the limiter is configured */
  buckets: SharedArrayBuffer | null
  /** worker-side metric counters (src/observability/); null when metrics are off */
  metrics: SharedArrayBuffer | null
  /** upstream targets: in flight, ejection, health (src/traffic/target-table.ts); null in in-process plans */
  targets: SharedArrayBuffer | null
}

export function createShared(): SharedBuffers {
  return { inflight: new SharedArrayBuffer(8), buckets: null, metrics: null, targets: null }
}
