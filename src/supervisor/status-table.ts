// `leaky status` for humans: the master's answer as a short table, one row per generation process.
import type { MasterStatus } from './master.js'

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m ${s % 60}s`
  const h = Math.floor(m / 60)
  if (h < 48) return `${h}h ${m % 60}m`
  return `${Math.floor(h / 24)}d ${h % 24}h`
}

function pct(used: number, capacity: number): string {
  return capacity === 0 ? '0%' : `${((used / capacity) * 100).toFixed(used === 0 ? 0 : 1)}%`
}

export function formatStatus(st: MasterStatus, now = Date.now()): string {
  const m = st.master
  const sup = st.supervisor
  const lines: string[] = []
  lines.push(`leaky ${m.version} · master pid ${m.pid} · up ${formatDuration(m.uptime_ms)} · config ${m.config_file}`)
  const header = ['GEN', 'PID', 'STATE', 'UPTIME', 'WORKERS', 'IN-FLIGHT', 'REQUESTS', 'CONFIG', 'BUCKETS']
  const rows: string[][] = [header]
  for (const g of st.generations) {
    const s = g.status
    if (s === null) {
      rows.push([String(g.number), String(g.pid), `${g.role} (no answer)`, '-', '-', '-', '-', '-', '-'])
      continue
    }
    const since = s.ready_at_ms > 0 ? s.ready_at_ms : s.started_at_ms
    const state = g.role === 'current' ? s.state : g.role
    rows.push([
      String(s.generation),
      String(s.pid),
      state,
      formatDuration(now - since),
      `${s.workers_up}/${s.workers}${s.worker_restarts > 0 ? ` (${s.worker_restarts} restarted)` : ''}`,
      String(s.inflight),
      String(s.requests),
      `v${s.config_version}`,
      s.buckets === null ? '-' : `${s.buckets.used}/${s.buckets.capacity} (${pct(s.buckets.used, s.buckets.capacity)})`,
    ])
  }
  if (st.generations.length === 0) rows.push(['-', '-', st.restart_in_ms === null ? 'none' : `restarting in ${st.restart_in_ms} ms`, '-', '-', '-', '-', '-', '-'])
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  for (const r of rows) lines.push(r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd())
  lines.push(
    `reloads: ${sup.reloads_ok} ok, ${sup.reloads_failed} failed · upgrades: ${sup.upgrades_ok} ok, ${sup.upgrades_failed} failed · ` +
      `generation restarts: ${sup.restarts}${sup.crash_loop ? ' (CRASH LOOP)' : ''}`,
  )
  const cur = st.generations.find((g) => g.role === 'current')?.status
  if (cur?.state_file) {
    const w = cur.last_state_write_ms === null ? 'not written yet' : `written ${formatDuration(now - cur.last_state_write_ms)} ago`
    lines.push(`state file: ${cur.state_file} (${w})`)
  }
  if (st.tcp_migrate_req === 0) lines.push('warning: net.ipv4.tcp_migrate_req=0: upgrades can reset queued connections (see systemd/99-leaky.conf)')
  return `${lines.join('\n')}\n`
}
