// The kernel setting an upgrade depends on. Every worker listens on the same port with SO_REUSEPORT, and the kernel
// hashes each new connection to one listener's accept queue. When the old generation closes its listeners,
// connections already queued there (handshake done, not yet accepted) are reset, unless
// net.ipv4.tcp_migrate_req=1 (Linux 5.14+), which moves them to another listener of the same port.
// systemd/99-leaky.conf sets it; bench/upgrade measures both ways.
import { readFileSync } from 'node:fs'

export const MIGRATE_REQ = '/proc/sys/net/ipv4/tcp_migrate_req'

/** 1 or 0, or null where the kernel has no such setting (older than 5.14, or not Linux). */
export function tcpMigrateReq(file = MIGRATE_REQ): 0 | 1 | null {
  try {
    return readFileSync(file, 'utf8').trim() === '0' ? 0 : 1
  } catch {
    return null
  }
}
