// The audit log: one JSON object a line, appended to `audit.file` (or written to stderr), for every admin API call,
// key lifecycle event, reload and upgrade, and aggregated admin authentication failures. It never carries a secret:
// callers pass ids, roles, hashes' owners and results only. Writes are synchronous and whole-line (O_APPEND), so the
// master, the generations and the `leaky key` CLI can append to one file without interleaving; they are rare (admin
// actions), never on the request path. SIGUSR1 reopens the file for logrotate.
import { closeSync, openSync, writeSync } from 'node:fs'

export const AUDIT_VERSION = 1

export interface AuditEvent {
  event: 'admin' | 'key' | 'reload' | 'upgrade' | 'auth_failures' | 'audit'
  [k: string]: unknown
}

export class AuditLog {
  #file: string | undefined
  #fd: number
  /** the last write error, reported once until a write succeeds again */
  #failing = false
  readonly #onError: (err: Error, file: string) => void

  constructor(file: string | undefined, onError: (err: Error, file: string) => void = () => {}) {
    this.#file = file
    this.#onError = onError
    this.#fd = this.#open()
  }

  get file(): string | undefined {
    return this.#file
  }

  #open(): number {
    if (this.#file === undefined) return 2
    try {
      return openSync(this.#file, 'a', 0o600)
    } catch (err) {
      this.#onError(err as Error, this.#file)
      return -1
    }
  }

  /** Append one line: time and format version first, then the event's fields. */
  write(e: AuditEvent): void {
    const line = `${JSON.stringify({ time: new Date().toISOString(), v: AUDIT_VERSION, ...e })}\n`
    if (this.#fd < 0) this.#fd = this.#open()
    if (this.#fd < 0) return
    try {
      writeSync(this.#fd, line)
      this.#failing = false
    } catch (err) {
      if (!this.#failing) this.#onError(err as Error, this.#file ?? 'stderr')
      this.#failing = true
    }
  }

  /** Close and open again (logrotate moved the file away), or switch to another file after a reload. */
  reopen(file: string | undefined = this.#file): void {
    if (this.#fd > 2) closeSync(this.#fd)
    this.#file = file
    this.#fd = this.#open()
  }

  close(): void {
    if (this.#fd > 2) closeSync(this.#fd)
    this.#fd = -1
  }
}
