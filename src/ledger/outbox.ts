// A worker's side of the usage ledger: each finished request adds to this thread's row for its (minute, key, org,
// model, route, status class), and the rows go to the generation's main thread in one postMessage per FLUSH_MS
// (and on drain), where the one writer merges every worker's rows into SQLite (writer.ts). Nothing here touches
// the disk or waits: a request pays one Map lookup and a few additions.
import { rowKey, type LedgerRow, type UsageBatch } from './row.js'

/** how often a worker hands its rows over: the most a kill -9 can lose beyond the writer's flush interval */
export const FLUSH_MS = 1000
/** distinct rows a worker holds before it hands them over early (keys × models × routes within one second) */
const MAX_ROWS = 4096

let post: ((b: UsageBatch) => void) | null = null
let rows = new Map<string, LedgerRow>()
let timer: NodeJS.Timeout | null = null

/** The worker thread says where batches go (its parentPort); until then (and with the ledger off) nothing is kept. */
export function connectLedger(to: ((b: UsageBatch) => void) | null): void {
  post = to
}

/**
 * One finished request (every one, so the ledger's request counts equal the access lines'). `costMicro`: its cost
 * as the access line shows it, 0 when there is none; `unpriced`: it had usage but its model has no price.
 */
export function recordUsage(
  now: number, key: string, org: string, model: string, route: string, status: number,
  prompt: number, completion: number, cached: number, thoughts: number, total: number, costMicro: number, unpriced: boolean,
): void {
  if (post === null) return
  const minute = Math.floor(now / 60_000)
  const cls = Math.floor(status / 100)
  const k = rowKey(minute, key, org, model, route, cls)
  let r = rows.get(k)
  if (r === undefined) {
    r = [minute, key, org, model, route, cls, 0, 0, 0, 0, 0, 0, 0, 0]
    rows.set(k, r)
  }
  r[6]++
  r[7] += prompt
  r[8] += completion
  r[9] += cached
  r[10] += thoughts
  r[11] += total
  r[12] += costMicro
  if (unpriced) r[13]++
  if (rows.size >= MAX_ROWS) flushLedger()
  else if (timer === null) {
    timer = setTimeout(flushLedger, FLUSH_MS)
    timer.unref()
  }
}

/** Hand over what is waiting now (also on drain and on a crash: a worker's last rows leave before it ends). */
export function flushLedger(): void {
  if (timer !== null) {
    clearTimeout(timer)
    timer = null
  }
  if (rows.size === 0 || post === null) return
  const b: UsageBatch = { type: 'usage', rows: [...rows.values()] }
  rows = new Map()
  post(b)
}
