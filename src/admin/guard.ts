// Failed admin authentications, per source address: past `admin.failed_auth` in its window the source gets 429
// before its token is even looked at (a brute force gets nowhere), and the failures go to the audit log as one line
// per source and reason per minute, not one per attempt (no flood).
import type { AuditLog } from '../audit/audit-log.js'

/** Sources remembered at most; past it the oldest windows are dropped (memory is bounded under a spray of addresses). */
const MAX_SOURCES = 10_000
const AUDIT_EVERY_MS = 60_000

export class AuthGuard {
  readonly #windows = new Map<string, { start: number; failures: number }>()
  /** "source\0reason" → failures since the last audit flush */
  #pending = new Map<string, number>()
  #since = Date.now()
  readonly #timer: NodeJS.Timeout
  readonly #audit: AuditLog | null

  constructor(audit: AuditLog | null) {
    this.#audit = audit
    this.#timer = setInterval(() => this.flush(), AUDIT_EVERY_MS)
    this.#timer.unref()
  }

  /** ms until `source` may try again (0: it may now). */
  blockedFor(source: string, limit: { amount: number; period_ms: number }, now = Date.now()): number {
    const w = this.#windows.get(source)
    if (w === undefined || now - w.start >= limit.period_ms) return 0
    return w.failures >= limit.amount ? w.start + limit.period_ms - now : 0
  }

  failed(source: string, reason: string, limit: { period_ms: number }, now = Date.now()): void {
    let w = this.#windows.get(source)
    if (w === undefined || now - w.start >= limit.period_ms) {
      if (w === undefined && this.#windows.size >= MAX_SOURCES) this.#prune(now, limit.period_ms)
      w = { start: now, failures: 0 }
      this.#windows.set(source, w)
    }
    w.failures++
    const k = `${source}\0${reason}`
    this.#pending.set(k, (this.#pending.get(k) ?? 0) + 1)
  }

  #prune(now: number, period: number): void {
    for (const [s, w] of this.#windows) if (now - w.start >= period) this.#windows.delete(s)
    // all still live: drop the oldest (Map keeps insertion order)
    while (this.#windows.size >= MAX_SOURCES) this.#windows.delete(this.#windows.keys().next().value!)
  }

  /** One audit line per source and reason with the failures since the last flush. */
  flush(now = Date.now()): void {
    if (this.#pending.size === 0) {
      this.#since = now
      return
    }
    const from = new Date(this.#since).toISOString()
    for (const [k, count] of this.#pending) {
      const i = k.indexOf('\0')
      this.#audit?.write({ event: 'auth_failures', source: k.slice(0, i), reason: k.slice(i + 1), count, from, to: new Date(now).toISOString() })
    }
    this.#pending = new Map()
    this.#since = now
  }

  close(): void {
    clearInterval(this.#timer)
    this.flush()
  }
}
