// The target table across an upgrade: the old generation's state of every target and provider account of its config
// rides with the bucket snapshot it hands over (Snapshot.targets), and the new generation continues it before it
// serves — a target ejected or marked down stays out, an exhausted provider account stays blocked until its reset,
// an adaptive limit goes on from where it was. Matched by (upstream, target URL): a target the new config no longer
// has is dropped, a new one starts fresh. A restart after a crash starts fresh (the per-second copies to the master
// carry buckets only): the state is about the last seconds, and health checks and passive ejection rebuild it.
import type { SlotState, TargetTable } from './target-table.js'
import { ACCOUNT } from './provider-limits.js'

export interface TargetHandover extends SlotState {
  upstream: string
  /** a target URL, or ACCOUNT for the upstream's provider account */
  target: string
}

/** Every target and account of the config's upstreams, as they stand. */
export function exportTargets(table: TargetTable, upstreams: Record<string, { targets: string[] }>): TargetHandover[] {
  const out: TargetHandover[] = []
  for (const [name, u] of Object.entries(upstreams)) {
    for (const target of [ACCOUNT, ...u.targets]) {
      const slot = table.slot(name, target)
      if (slot >= 0) out.push({ upstream: name, target, ...table.exportSlot(slot) })
    }
  }
  return out
}

/** Continue the previous generation's state; returns how many slots were taken over. */
export function importTargets(table: TargetTable, states: readonly TargetHandover[], upstreams: Record<string, { targets: string[] }>): number {
  let n = 0
  for (const st of states) {
    const u = upstreams[st.upstream]
    if (u === undefined || (st.target !== ACCOUNT && !u.targets.includes(st.target))) continue
    const slot = table.slot(st.upstream, st.target)
    if (slot < 0) continue
    table.importSlot(slot, st)
    n++
  }
  return n
}
