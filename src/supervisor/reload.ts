// What a reload applies: the new config, except the settings fixed when a generation starts (listening sockets,
// worker count, bucket table size, the head limit uWS reads once), which keep their running values until an
// upgrade. diffConfig says which those are; this module turns that into the config the running generation actually
// switches to.
import { diffConfig, type Config } from '../config/index.js'

export interface ReloadPlan {
  /** the config to apply in place */
  config: Config
  /** top-level sections that change in place */
  applied: string[]
  /** changed settings that take effect only with `leaky upgrade` */
  needsUpgrade: string[]
  /** changed settings the master reads once: they take effect only when the service restarts */
  needsRestart: string[]
}

/** Settings only the master reads, at start: neither a reload nor an upgrade changes them. */
const MASTER_ONLY = ['pid_file'] as const

export function planReload(running: Config, next: Config): ReloadPlan {
  const d = diffConfig(running, next)
  const needsRestart = MASTER_ONLY.filter((k) => d.inPlace.includes(k))
  const applied = d.inPlace.filter((k) => !(MASTER_ONLY as readonly string[]).includes(k))
  const config: Config = {
    ...next,
    listen: running.listen,
    listen_plain: running.listen_plain,
    workers: running.workers,
    pid_file: running.pid_file,
    limits_table: { ...next.limits_table, capacity: running.limits_table.capacity },
    admin: { ...next.admin, listen: running.admin.listen },
    server: { ...next.server, max_header: running.server.max_header },
    key_store: { ...next.key_store, file: running.key_store.file, shared: running.key_store.shared },
  }
  return { config, applied, needsUpgrade: d.needsUpgrade, needsRestart: [...needsRestart] }
}
