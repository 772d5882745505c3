// Bucket state across generations: take and restore snapshots of a generation's bucket table, and merge what an
// old generation charged after it handed its snapshot over (the "final delta").
//
// Upgrade hand-over, as built: at t0 the master takes snapshot B of G and gives it to G+1, which restores it before
// its workers listen. G and G+1 then both serve for a while (G finishes its in-flight requests and streams, and
// charges their token usage). When G has drained it sends its final snapshot F; G+1 adds, for every bucket,
// delta = TAT_F - max(TAT_B, t0) to its own level. Buckets were continuously non-empty (daily and monthly budgets,
// busy keys): delta is exactly what G charged. A bucket that was empty at t0: delta also counts the time between t0
// and G's first charge on it, so the merge errs on the full side (never lets a client above its limit), by at most
// the length of the overlap. The merge goes through the table's restore (max of two levels); a charge G+1 makes on
// the same bucket in the few milliseconds between reading its level and writing the merged one is absorbed by the
// max, so that charge is under-counted by at most min(delta, that charge).
//
// Time: TATs are nanoseconds since the Unix epoch, so a snapshot restored after downtime has drained by exactly
// the time spent down (buckets empty by then are dropped by restore).
import { BucketTable, type RestoreResult } from '../limiter/table.js'
import { SnapshotReader, SnapshotWriter, type SnapshotError } from '../limiter/snapshot.js'
import type { Snapshot } from './protocol.js'

const NS_PER_MS = 1_000_000n

export function takeSnapshot(table: BucketTable): Snapshot {
  const now = table.clock.now()
  return { taken_at_ms: Number(now / NS_PER_MS), bytes: table.snapshot(now) }
}

export function restoreSnapshot(table: BucketTable, s: Snapshot): RestoreResult {
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
