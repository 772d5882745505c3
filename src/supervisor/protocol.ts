// The messages between the master and a generation process (Node IPC, `serialization: 'advanced'`, so bucket
// snapshots travel as Uint8Array without base64). The master runs the code it was started with for months while
// each upgrade forks a generation from the code now on disk: PROTOCOL_VERSION is bumped on any change to these
// shapes that one side cannot do without, and a generation refuses an init it does not understand (Envoy's
// HOT_RESTART_VERSION). An optional field that both sides do without (`?:` below) is added without a bump, so an
// upgrade from an older master still works; it just brings nothing.
import type { TargetHandover } from '../traffic/handover.js'
import type { StatusHistory } from '../observability/history.js'

export const PROTOCOL_VERSION = 1

/** Counters the master keeps across generations; each generation shows them on /ready, /status and metrics. */
export interface SupervisorInfo {
  master_pid: number
  /** generations started after one died */
  restarts: number
  /** deaths in a row without a stable generation in between; ≥ CRASH_LOOP_AT means a crash loop */
  consecutive_crashes: number
  crash_loop: boolean
  /** delay before the next restart while backing off, else 0 */
  backoff_ms: number
  reloads_ok: number
  reloads_failed: number
  upgrades_ok: number
  upgrades_failed: number
  /**
   * When the service began to serve without a gap (ms since the epoch): the first generation's start, kept across
   * upgrades, reset by a restart after a generation died. The status page's uptime. Absent from older masters.
   */
  serving_since_ms?: number
}

/** A bucket snapshot in flight between processes: the limiter's bytes plus when they were taken (wall clock). */
export interface Snapshot {
  taken_at_ms: number
  bytes: Uint8Array
  /** the sender's /status history, which the receiver continues (src/observability/history.ts); not in state files */
  status?: StatusHistory
  /** hand-over only: the sender's upstream target state, which the receiver continues (src/traffic/handover.ts) */
  targets?: TargetHandover[]
}

export interface GenerationInit {
  type: 'init'
  protocol: number
  generation: number
  config_file: string
  /** upgrade or restart: bind this port (the running one) instead of the configured one, which may be 0 */
  port: number | null
  /**
   * upgrade: start everything but do not listen; say `prepared`, then wait for the old generation's buckets
   * (`handoff`), restore them and listen. No admin listener and no state file until promoted.
   */
  handoff: boolean
  /** not a hand-over: bucket state to start from (the dead generation's last copy); null: the state file */
  snapshot: Snapshot | null
  info: SupervisorInfo
  /** allows the crash-worker test hook */
  test_hooks: boolean
}

export type ToGeneration =
  | GenerationInit
  | { type: 'reload'; id: number }
  | { type: 'status'; id: number }
  /** handoff: this snapshot goes to the next generation; remember it as the base of the deltas sent while draining */
  | { type: 'snapshot'; id: number; handoff: boolean }
  /** the old generation's buckets, taken just now: restore them, then listen */
  | { type: 'handoff'; snapshot: Snapshot | null }
  /** upgrade: the old generation has let go; bind the admin listener and own the state file from now on */
  | { type: 'promote'; id: number }
  /** handoff: give up the admin port and the state file, drain, and send deltas of what is still charged */
  | { type: 'drain'; mode: 'stop' | 'handoff'; timeout_ms: number | null }
  /** an older generation's charges between two of its snapshots, to add to this generation's buckets */
  | { type: 'merge'; base: Snapshot; final: Snapshot }
  | { type: 'info'; info: SupervisorInfo }
  | { type: 'crash-worker'; index: number }
  /** answer to an `admin-command` (older masters never send it: the generation times out and says so) */
  | { type: 'admin-command-result'; id: number; result: { ok: boolean; [k: string]: unknown } }
  /** SIGUSR1 reached the master: reopen the audit log (logrotate moved it) */
  | { type: 'reopen-audit' }

export interface ReloadResult {
  ok: boolean
  /** config errors, formatted `file:line:col path: message` */
  errors: string[]
  /** top-level sections applied in place */
  applied: string[]
  /** changed settings that need `leaky upgrade` */
  needs_upgrade: string[]
  /** changed settings the master reads only at start (pid_file) */
  needs_restart: string[]
  config_version: number
}

export interface GenerationStatus {
  generation: number
  pid: number
  started_at_ms: number
  ready_at_ms: number
  state: 'starting' | 'serving' | 'draining'
  port: number
  admin_port: number
  workers: number
  workers_up: number
  worker_restarts: number
  inflight: number
  requests: number
  config_version: number
  buckets: { used: number; capacity: number } | null
  state_file: string | null
  last_state_write_ms: number | null
}

export type FromGeneration =
  /** handoff: workers started, not listening; waiting for the buckets */
  | { type: 'prepared' }
  | { type: 'ready'; port: number; admin_port: number; workers: number; config_version: number }
  /** start-up failed; `errors` are config errors when that was the cause */
  | { type: 'failed'; message: string; errors: string[] }
  | { type: 'reload-result'; id: number; result: ReloadResult }
  | { type: 'status'; id: number; status: GenerationStatus }
  | { type: 'snapshot'; id: number; snapshot: Snapshot | null }
  | { type: 'admin'; id: number; port: number; error: string | null }
  /** periodic copy of the buckets, so a generation killed with -9 restarts from at most this old */
  | { type: 'snapshot-tick'; snapshot: Snapshot }
  | { type: 'admin-released' }
  /** while draining after a hand-over, every DELTA_MS and at the end: what was charged between base and final */
  | { type: 'delta'; base: Snapshot; final: Snapshot }
  | { type: 'stopped'; cut: number }
  /** the admin API asks the master to reload or to drain (stop) the service */
  | { type: 'admin-command'; id: number; cmd: 'reload' | 'drain'; source: string }
