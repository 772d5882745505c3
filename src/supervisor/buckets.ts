// Bucket state across generations: take and restore snapshots of a generation's bucket table, and merge what an
// old generation charged after it handed its buckets over (deltas).
//
// Upgrade hand-over, as built. The new generation G+1 starts everything but does not listen yet. Then, at t0, the
// master takes snapshot B of the old generation G and gives it to G+1, which restores it and starts listening; G
// stops accepting right after. G keeps serving what it has in flight (streams, requests on kept-alive connections)
// and charging their usage: while it drains it sends, every DELTA_MS and once at the end, the delta between its
// previous snapshot and a new one, which the master hands to the serving generation. For each bucket,
// delta = TAT_new - max(TAT_prev, t_prev) is added to the receiver's level. So during the overlap each generation
// enforces limits on its own view (B plus its own charges, plus G's charges up to the last delta): a limit can be
// exceeded by what the other generation charged in the last DELTA_MS, and the sum is exact once the deltas are in.
// Buckets that stayed non-empty (daily and monthly budgets, busy keys) merge exactly. A bucket that was empty at
// t_prev: the delta also counts the time between t_prev and G's first charge on it, so the merge errs on the full
// side (never lets a client above its limit), by at most DELTA_MS. The merge goes through the table's restore (max
// of two levels): a charge the receiver makes on the same bucket in the instant between reading its level and
// writing the merged one is absorbed by the max, i.e. under-counted by at most min(delta, that charge).
//
// Time: TATs are nanoseconds since the Unix epoch, so a snapshot restored after downtime has drained by exactly
// the time spent down (buckets empty by then are dropped by restore).
//
// The /status history rides along: a snapshot of a table carries the history of the generation reporting on it, and
// restoring one hands that history to the receiving generation, which continues it (src/observability/history.ts).
// So an upgrade keeps the status page's charts, and so does a restart from the master's last copy.
import { BucketTable, type RestoreResult } from '../limiter/table.js'
import { SnapshotReader, SnapshotWriter, type SnapshotError } from '../limiter/snapshot.js'
import { historyOf, inheritHistory } from '../observability/history.js'
import type { Snapshot } from './protocol.js'

const NS_PER_MS = 1_000_000n

export function takeSnapshot(table: BucketTable): Snapshot {
  const now = table.clock.now()
  const s: Snapshot = { taken_at_ms: Number(now / NS_PER_MS), bytes: table.snapshot(now) }
  const status = historyOf(table)
  if (status !== null) s.status = status
  return s
}

export function restoreSnapshot(table: BucketTable, s: Snapshot): RestoreResult {
  if (s.status !== undefined) inheritHistory(table, s.status)
  return table.restore(s.bytes, table.clock.now())
}

export type MergeResult = { ok: true; merged: number } | { ok: false; error: SnapshotError }

function keyOf(r: SnapshotReader): string {
  return `${r.code}:${r.bytes.toString('latin1', r.offset, r.offset + (r.code & 0xff))}`
}

/** Add to `table` what the generation that produced `final` charged after `base` was taken from it. */
export function mergeDelta(table: BucketTable, base: Snapshot, final: Snapshot): MergeResult {
  const b = SnapshotReader.open(base.bytes)
  if (typeof b === 'string') return { ok: false, error: b }
  const f = SnapshotReader.open(final.bytes)
  if (typeof f === 'string') return { ok: false, error: f }
  const t0 = b.takenAt
  const before = new Map<string, bigint>()
  while (b.next()) before.set(keyOf(b), b.tat)

  const now = table.clock.now()
  const cur = SnapshotReader.open(table.snapshot(now))
  if (typeof cur === 'string') return { ok: false, error: cur }
  const mine = new Map<string, bigint>()
  while (cur.next()) mine.set(keyOf(cur), cur.tat)

  const w = new SnapshotWriter(table.capacity, now)
  let merged = 0
  while (f.next()) {
    const k = keyOf(f)
    const from = before.get(k) ?? t0
    const delta = f.tat - (from > t0 ? from : t0)
    if (delta <= 0n) continue
    const level = mine.get(k) ?? now
    w.add((level > now ? level : now) + delta, f.code, f.bytes, f.offset)
    merged++
  }
  if (merged === 0) return { ok: true, merged }
  const r = table.restore(w.finish(), now)
  return r.ok ? { ok: true, merged } : { ok: false, error: r.error }
}

/** The fresher of two candidate start states (the master's last copy and the state file), or null. */
export function fresher(a: Snapshot | null, b: Snapshot | null): Snapshot | null {
  if (a === null) return b
  if (b === null) return a
  return b.taken_at_ms > a.taken_at_ms ? b : a
}

/** Same buckets at the same levels (the headers, with their times, may differ): no delta worth sending. */
export function sameBuckets(a: Snapshot, b: Snapshot): boolean {
  const x = SnapshotReader.open(a.bytes)
  const y = SnapshotReader.open(b.bytes)
  if (typeof x === 'string' || typeof y === 'string' || x.count !== y.count) return false
  while (x.next() && y.next()) {
    if (x.tat !== y.tat || x.code !== y.code) return false
    const n = x.code & 0xff
    if (x.bytes.compare(y.bytes, y.offset, y.offset + n, x.offset, x.offset + n) !== 0) return false
  }
  return true
}
