// What a worker thread shares across all its requests, set once when the worker starts: its logger and the
// SharedArrayBuffer counters every worker of the generation updates (in-flight requests for the admit gate).
import type { Logger } from '../observability/logger.js'
import type { AccessWriter } from '../observability/access-line.js'
import type { BucketTable } from '../limiter/table.js'
import type { ClusterLimiter } from '../limiter/cluster.js'
import type { CacheClient } from '../cache/call.js'

export interface WorkerContext {
  logger: Logger
  /** the access line's writer, on the logger's destination */
  access: AccessWriter
  /** [0] in-flight requests across all workers (the admit gate), [1] requests in flight in this generation */
  inflight: Int32Array
  /** requests in flight on this worker: the drain waits for 0 */
  local: number
  /** the generation's bucket table, attached in this thread */
  table: BucketTable | null
  /** this thread's Redis backend for `scope: cluster` limits (null: no redis section) */
  cluster: ClusterLimiter | null
  /** this thread's connection to the response cache owner (null: no cache port, e.g. in-process tests) */
  cache: CacheClient | null
}

export const ctx: WorkerContext = {
  logger: null as unknown as Logger,
  access: null as unknown as AccessWriter,
  inflight: new Int32Array(new SharedArrayBuffer(8)),
  local: 0,
  table: null,
  cluster: null,
  cache: null,
}
