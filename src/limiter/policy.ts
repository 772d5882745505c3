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

/** A `tats` entry whose bucket could not be read (its slot stayed busy): the headers leave that limit out. */
export const UNKNOWN_TAT = -1n

/** The charges of one request and, after chargeAll, the decision. Arrays are reused across clear(). */
export class Charges {
  length = 0
  readonly limits: CompiledLimit[] = []
  readonly scopes: string[] = []
  readonly costs: number[] = []
  /**
   * Per charge after chargeAll: the bucket's TAT. On OK, after the charge. On DENIED and OVER_BURST, every bucket as it
   * stands without this request (the ones charged before the denial as their refund left them, the others peeked),
   * UNKNOWN_TAT where the slot was too busy to read. On FULL and BUSY only the decider's. See afterNs().
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

  /** ns from `now` until charge i's bucket is empty (see `tats`); for a calendar window, its level × T. */
  afterNs(i: number): number {
    const tat = this.tats[i]
    const cal = this.limits[i].calendar
    // a calendar bucket is charged at its window's end (table.ts): its level is measured from there
    const at = cal === null || this.now <= 0n ? this.now : cal.endNs(this.now)
    return tat > at ? Number(tat - at) : 0
  }

  /** ns from `now` until charge i's bucket is back to its full burst: drained, or its calendar window's end. */
  resetNs(i: number): number {
    const after = this.afterNs(i)
    const cal = this.limits[i].calendar
    if (cal === null || after === 0 || this.now <= 0n) return after
    return Number(cal.endNs(this.now) - this.now)
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
      return decide(req, table, i, st === Status.OK ? Status.OVER_BURST : st, table.tat, 0, now, 0)
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
    // the refund leaves the bucket as it was without this request: that level is what the headers report
    for (let j = 0; j < i; j++) tats[j] = table.adjust(limits[j], scopes[j], -costs[j], now) === Status.OK ? table.tat : UNKNOWN_TAT
    return decide(req, table, i, st, tat, retry, now, i + 1)
  }
  req.status = Status.OK
  req.decider = -1
  req.retryNs = 0
  return Status.OK
}

// `from`: the first charge not yet tried (and not refunded); the ones before it already hold their level.
function decide(req: Charges, table: BucketTable, i: number, st: Status, tat: bigint, retry: number, now: bigint, from: number): Status {
  req.decider = i
  req.tats[i] = tat
  req.status = st
  // a calendar window refuses until it ends, whatever its level: the table's retry is in the window's virtual time
  const cal = req.limits[i].calendar
  req.retryNs = st !== Status.DENIED ? 0 : cal === null ? retry : Number(cal.endNs(now) - now)
  if (st !== Status.DENIED && st !== Status.OVER_BURST) return st
  // the limits not tried: peek them, so a 429 reports every limit of the request and Retry-After covers every limit
  // that would deny it
  for (let k = from; k < req.length; k++) {
    if (k === i) continue
    const l = req.limits[k]
    if (table.peek(l, req.scopes[k], now) !== Status.OK) {
      req.tats[k] = UNKNOWN_TAT
      continue
    }
    req.tats[k] = table.tat
    // a charge of 0 (no token estimate) conforms whatever the level: it cannot be the one to wait for
    if (st !== Status.DENIED || req.costs[k] === 0) continue
    let wait = table.afterNs + req.costs[k] * l.tNs - l.tauNs
    if (wait > 0 && l.calendar !== null) wait = Number(l.calendar.endNs(now) - now)
    if (wait > req.retryNs) {
      req.retryNs = wait
      req.decider = k
    }
  }
  return st
}
