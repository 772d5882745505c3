// The /status history as it travels from one generation to the next. A generation's counters start at zero and its
// label slots are its own, so the samples go by name (upstream, model, key id), and the receiver adds the sender's
// last totals to its own counters from then on: its rates, windows and totals continue across the upgrade as if one
// process had taken every sample.
//
// It rides with the bucket snapshots (src/supervisor/buckets.ts): the status history of a generation is found by the
// bucket table it reports on, so every way the buckets leave a generation — the hand-over of an upgrade, the periodic
// copy a restart after a crash starts from — carries the history too, and restoring the buckets restores it. The
// master only passes it along.
//
// Size: counters only grow, so a column whose first and last values agree stayed the same all along and travels as
// one number; columns that are zero throughout do not travel. A busy five minutes is some tens of kB.

/** One counter over the carried samples: its value at each sample, or one number when it did not change. */
export type Column = number | Float64Array

export const HISTORY_VERSION = 1

export interface StatusHistory {
  version: typeof HISTORY_VERSION
  /** sample times, seconds since the epoch, oldest first */
  t: Float64Array
  requests: Column
  limited: Column
  /** the latency histogram's cells: one per duration bucket, +Inf, sum */
  duration: Column[]
  /** prompt + completion + thoughts tokens per (upstream, model) */
  tokens: Array<{ upstream: string; model: string; total: Column }>
  upstreams: Array<{ name: string; attempts: Column; failed: Column }>
  keys: Array<{ id: string; requests: Column; limited: Column }>
}

/** The counter `at(i)` over `n` samples as a Column; null when it is zero throughout (nothing to carry). */
export function column(n: number, at: (i: number) => number): Column | null {
  const first = at(0)
  const last = at(n - 1)
  if (first === last) return last === 0 ? null : last
  const c = new Float64Array(n)
  for (let i = 0; i < n; i++) c[i] = at(i)
  return c
}

export function valueAt(c: Column, i: number): number {
  return typeof c === 'number' ? c : c[i]
}

/** Whether `h` (from another process, maybe another version) has the shape this build reads. */
export function isHistory(h: unknown, cells: number): h is StatusHistory {
  if (typeof h !== 'object' || h === null) return false
  const x = h as Record<string, unknown>
  const t = x.t
  if (x.version !== HISTORY_VERSION || !(t instanceof Float64Array) || t.length === 0) return false
  const col = (c: unknown) => typeof c === 'number' || (c instanceof Float64Array && c.length === t.length)
  const str = (v: unknown) => typeof v === 'string'
  const list = (a: unknown, entry: (e: Record<string, unknown>) => boolean) =>
    Array.isArray(a) && a.every((e) => typeof e === 'object' && e !== null && entry(e as Record<string, unknown>))
  return col(x.requests) && col(x.limited) && Array.isArray(x.duration) && x.duration.length === cells && x.duration.every(col) &&
    list(x.tokens, (e) => str(e.upstream) && str(e.model) && col(e.total)) &&
    list(x.upstreams, (e) => str(e.name) && col(e.attempts) && col(e.failed)) &&
    list(x.keys, (e) => str(e.id) && col(e.requests) && col(e.limited))
}

/** What carries a generation's status history: its StatusSampler. */
export interface HistoryCarrier {
  /** The history up to now; null when there is none (metrics off). */
  history(): StatusHistory | null
  /** Continue from `h` (another generation's history); false when it cannot be used. */
  inherit(h: StatusHistory): boolean
}

const carriers = new WeakMap<object, HistoryCarrier>()

/** From now on, the snapshots of `table` carry `carrier`'s history and restoring one into `table` hands it over. */
export function carryWith(table: object, carrier: HistoryCarrier): void {
  carriers.set(table, carrier)
}

/** The history to send along with a snapshot of `table`, or null. */
export function historyOf(table: object): StatusHistory | null {
  return carriers.get(table)?.history() ?? null
}

/** Hand a snapshot's history to whatever reports on `table`; false when nothing does or the history is unusable. */
export function inheritHistory(table: object, h: StatusHistory): boolean {
  return carriers.get(table)?.inherit(h) ?? false
}
