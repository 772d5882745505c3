// The limiter's public surface, for the limit stage and the generation (state handoff). Pure core: no HTTP, no config
// parsing. See table.ts for the shared-memory design, policy.ts for all-or-nothing, headers.ts for the responses.
export { Clock } from './clock.js'
export { compileLimit, CompiledLimit, MAX_TAU_NS, type LimitDef, type LimitSubject, type LimitUnit } from './limit.js'
export { goDuration, rateLimitHeaders, remaining } from './headers.js'
export { Charges, chargeAll } from './policy.js'
export { SNAPSHOT_VERSION, type SnapshotError } from './snapshot.js'
export {
  BucketTable, MAX_HANDLES, PROBE, SLOT_BYTES, Status, type Occupancy, type RestoreResult, type TableOptions, type TableStats,
  type WhenFull,
} from './table.js'
