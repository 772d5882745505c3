// Adapts the limiter's bucket table (src/limiter/table.ts) to the LimiterProbe metrics and /status read. Counting
// live buckets walks the whole table, so one count serves every scrape and status poll for a second.
import type { LimiterProbe, TableReport } from './exposition.js'

/** The part of BucketTable this reads (structural, so observability does not depend on the limiter). */
export interface ProbedTable {
  readonly capacity: number
  stats(): { evicted: number; full: number }
  occupancy(now: bigint): { live: number }
}

const MAX_AGE_MS = 1000

/** `now` must be on the table's clock (epoch ns); the default is the wall clock, close enough for a count. */
export function tableProbe(table: ProbedTable, now: () => bigint = epochNs): LimiterProbe {
  let at = -Infinity
  let used = 0
  return {
    table(): TableReport {
      const t = performance.now()
      if (t - at >= MAX_AGE_MS) {
        used = table.occupancy(now()).live
        at = t
      }
      const s = table.stats()
      return { used, capacity: table.capacity, evicted: s.evicted, full: s.full }
    },
  }
}

function epochNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n
}
