// All-or-nothing over the limits of one request: it is admitted only if every bucket conforms; buckets charged
// before a denial are refunded, so a denied request consumes nothing. Usage:
//
//   const req = new Charges()                  // one per request, or one per thread reused between requests
//   req.clear(); req.add(keyRpm, keyId, 1); req.add(keyTpm, keyId, tokens); req.add(orgDaily, org, tokens)
//   const st = chargeAll(table, req, table.clock.now())   // Status.OK | DENIED | OVER_BURST | FULL | BUSY
//   rateLimitHeaders(req, out)                 // headers.ts
//
// The rollback is exact (see gcra.ts): refunding c after charging c leaves the bucket as if it had not been charged,
// also when other threads charged it in between. Between charge and refund another request may see the transient
// charge and be denied; that errs on the safe side and is the price of not locking.
import type { CompiledLimit } from './limit.js'
import { type BucketTable, Status } from './table.js'

/** The charges of one request and, after chargeAll, the decision. Arrays are reused across clear(). */
export class Charges {
  length = 0
  readonly limits: CompiledLimit[] = []
  readonly scopes: string[] = []
  readonly costs: number[] = []
  /**
   * Per charge after chargeAll: the bucket's TAT. On OK, after the charge; on a failure, for the deciding limit
   * (`decider`) its current one; other entries are then unspecified. See afterNs().
   */
  readonly tats: bigint[] = []
  /** the `now` of the last chargeAll */
  now = 0n
  status: Status = Status.OK
  /** index of the limit that decided a non-OK status (DENIED: the one with the longest wait), else -1 */
  decider = -1
  /** DENIED: ns until the request would conform (the longest wait among the limits that deny it) */
  retryNs = 0

  clear(): void {
    this.length = 0
    this.status = Status.OK
    this.decider = -1
    this.retryNs = 0
  }

  add(limit: CompiledLimit, scope: string, cost: number): void {
    const i = this.length++
    this.limits[i] = limit
    this.scopes[i] = scope
    this.costs[i] = cost
    this.tats[i] = 0n
  }

  /** ns from `now` until charge i's bucket is empty (see `tats`). */
  afterNs(i: number): number {
    const tat = this.tats[i]
    return tat > this.now ? Number(tat - this.now) : 0
  }
}

/** Charge every limit of `req` at `now`, all or nothing. Sets req.status/decider/retryNs/afterNs. Never throws. */
export function chargeAll(table: BucketTable, req: Charges, now: bigint): Status {
  const n = req.length
  const { limits, scopes, costs, tats } = req
  req.now = now
  // a cost above a burst can never pass: answer before charging anything
  for (let i = 0; i < n; i++) {
    if (costs[i] > limits[i].burst) {
      const st = table.peek(limits[i], scopes[i], now)
      return decide(req, table, i, st === Status.OK ? Status.OVER_BURST : st, table.tat, 0, now)
    }
  }
  for (let i = 0; i < n; i++) {
    const st = table.charge(limits[i], scopes[i], costs[i], now)
    if (st === Status.OK) {
      tats[i] = table.tat
      continue
    }
    const tat = table.tat
    const retry = table.retryNs
    for (let j = 0; j < i; j++) table.adjust(limits[j], scopes[j], -costs[j], now)
    return decide(req, table, i, st, tat, retry, now)
  }
  req.status = Status.OK
  req.decider = -1
  req.retryNs = 0
  return Status.OK
}

function decide(req: Charges, table: BucketTable, i: number, st: Status, tat: bigint, retry: number, now: bigint): Status {
  req.decider = i
  req.tats[i] = tat
  req.status = st
  req.retryNs = st === Status.DENIED ? retry : 0
  if (st !== Status.DENIED) return st
  // the limits after the denier were not tried: peek them so Retry-After covers every limit that would deny
  for (let k = i + 1; k < req.length; k++) {
    const l = req.limits[k]
    if (table.peek(l, req.scopes[k], now) !== Status.OK) continue
    const wait = table.afterNs + req.costs[k] * l.tNs - l.tauNs
    if (wait > req.retryNs) {
      req.retryNs = wait
      req.decider = k
      req.tats[k] = table.tat
    }
  }
  return st
}
