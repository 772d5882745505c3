// The wait queue of an upstream's bulkhead (`queue: { size, timeout }` beside `max_inflight`): a request that finds
// every place taken waits, first in first out, until one comes free or its timeout passes. `size` bounds the
// requests waiting on all worker threads together (a word of the upstream's slot in the shared target table);
// the order is first in first out within each worker thread, and the threads compete for each freed place.
//
// Waiting costs no timer per request and no polling: a worker with requests queued keeps one Atomics.waitAsync on
// the upstream's in-flight count, which any thread that gives back a place wakes with Atomics.notify (only while
// someone waits: TargetTable.release); its timeout is the head's deadline, and since every request waits the same
// time the head always has the soonest one. A request whose client went away leaves the queue at once (remove,
// from account).
import type { RequestState } from '../server/request-state.js'
import type { TargetTable } from './target-table.js'

export interface QueueConfig {
  /** requests waiting at most, all workers together */
  size: number
  /** ms a request waits at most */
  timeout: number
}

export interface QueueHooks {
  /** Take the request's place if one is free now (true: taken). */
  enter(s: RequestState): boolean
  /** The request's time is up: answer it. */
  expired(s: RequestState): void
}

// Atomics.waitAsync is in Node since 16 (V8 8.7); TypeScript lists it only from lib es2024
type WaitAsync = (a: Int32Array, index: number, value: number, timeout: number) =>
  { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> }
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync

/** Compact the arrays once this many entries at their head are done with. */
const COMPACT_AT = 64

export class WaitQueue {
  readonly table: TargetTable
  readonly slot: number
  readonly size: number
  readonly timeout: number
  readonly #hooks: QueueHooks
  /** this worker's waiting requests, oldest first from #head; null: left the queue (client gone) */
  #waiting: Array<RequestState | null> = []
  #then: Array<(s: RequestState) => void> = []
  #deadline: number[] = []
  #head = 0
  /** a wait (waitAsync or setImmediate) is pending */
  #watching = false
  /** resolves drained() callers once the queue is empty */
  #onEmpty: Array<() => void> = []
  readonly #wake = (): void => {
    this.#watching = false
    this.#pump()
  }

  constructor(cfg: QueueConfig, table: TargetTable, slot: number, hooks: QueueHooks) {
    this.table = table
    this.slot = slot
    this.size = cfg.size
    this.timeout = cfg.timeout
    this.#hooks = hooks
  }

  /** Requests of this worker in the queue. */
  get length(): number {
    return this.#waiting.length - this.#head
  }

  /** Queue the request; `then` runs once it holds its place. False: the queue is full (nothing queued). */
  push(s: RequestState, then: (s: RequestState) => void): boolean {
    if (!this.table.startWaiting(this.slot, this.size)) return false
    this.#waiting.push(s)
    this.#then.push(then)
    this.#deadline.push(performance.now() + this.timeout)
    // a place may have come free since the caller looked: look again, on the next turn of the loop
    if (!this.#watching) {
      this.#watching = true
      setImmediate(this.#wake)
    }
    return true
  }

  /**
   * Resolves once this worker's part of the queue is empty (each request admitted, timed out or gone): a reload
   * closes the old plan's pools after that, so a request admitted from the queue never meets a closed pool.
   */
  drained(): Promise<void> {
    if (this.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.#onEmpty.push(resolve))
  }

  /** The request leaves the queue (its client went away); false when it was not in it. */
  remove(s: RequestState): boolean {
    const i = this.#waiting.indexOf(s, this.#head)
    if (i < 0) return false
    this.#waiting[i] = null
    this.table.stopWaiting(this.slot)
    return true
  }

  #pump(): void {
    const idx = this.table.inflightIndex(this.slot)
    // read before trying: a place given back after this read changes the word, so the wait below cannot miss it
    const seen = Atomics.load(this.table.i32, idx)
    const now = performance.now()
    while (this.#head < this.#waiting.length) {
      const s = this.#waiting[this.#head]
      if (s === null) {
        this.#take()
        continue
      }
      if (this.#hooks.enter(s)) {
        const then = this.#then[this.#head]
        this.#take()
        this.table.stopWaiting(this.slot)
        then(s)
        continue
      }
      if (this.#deadline[this.#head] > now) break
      this.#take()
      this.table.stopWaiting(this.slot)
      this.#hooks.expired(s)
    }
    if (this.#head >= COMPACT_AT && this.#head * 2 >= this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head)
      this.#then = this.#then.slice(this.#head)
      this.#deadline = this.#deadline.slice(this.#head)
      this.#head = 0
    }
    if (this.#head === this.#waiting.length) {
      if (this.#onEmpty.length > 0) for (const resolve of this.#onEmpty.splice(0)) resolve()
      return
    }
    this.#watching = true
    const r = waitAsync(this.table.i32, idx, seen, Math.max(1, this.#deadline[this.#head] - now))
    if (r.async) void r.value.then(this.#wake)
    else setImmediate(this.#wake)
  }

  #take(): void {
    this.#waiting[this.#head] = null
    this.#head++
  }
}
