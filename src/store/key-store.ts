// The runtime key store: one SQLite file (better-sqlite3, WAL) holding the keys made with `leaky key create` or
// POST /admin/keys. Only hashes are stored, never a secret. Several processes may open it at once (the serving
// generation, an upgrade's next one, the `leaky key` CLI): SQLite serialises the writers, and readers notice a
// change by PRAGMA data_version, which moves whenever another connection commits.
//
// The file carries its schema version in PRAGMA user_version; MIGRATIONS[n - 1] takes a file from version n - 1 to
// n, each in one transaction with its version bump, so a file from any earlier release opens, and a file written by
// a newer release is refused rather than misread.
import Database from 'better-sqlite3'
import { closeSync, existsSync, openSync } from 'node:fs'
import { createAtVersion as createDbAtVersion, migrate as migrateDb, moveAside } from './sqlite.js'

type DB = Database.Database

/** Numbered migrations: index 0 makes version 1, and so on. Never edit a released one; append. */
export const MIGRATIONS: ReadonlyArray<(db: DB) => void> = [
  // 1: keys with org, tier, expiry and revocation
  (db) => db.exec(`CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL DEFAULT '',
    tier TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
  )`),
  // 2: per-key allowed models and route prefixes (JSON arrays; NULL = any), rotation with a grace period
  (db) => db.exec(`
    ALTER TABLE keys ADD COLUMN models TEXT;
    ALTER TABLE keys ADD COLUMN routes TEXT;
    ALTER TABLE keys ADD COLUMN prev_sha256 TEXT;
    ALTER TABLE keys ADD COLUMN prev_until INTEGER;
    ALTER TABLE keys ADD COLUMN rotated_at INTEGER;
    CREATE INDEX keys_prev_sha256 ON keys (prev_sha256);
  `),
]

export const KEY_STORE_VERSION = MIGRATIONS.length

/** A runtime key as stored (times in ms since the epoch; null = not set). */
export interface KeyRow {
  id: string
  sha256: string
  org: string
  tier: string
  created_at: number
  expires_at: number | null
  revoked_at: number | null
  models: string[] | null
  routes: string[] | null
  /** the secret before the last rotation, valid until prev_until */
  prev_sha256: string | null
  prev_until: number | null
  rotated_at: number | null
}

export interface NewKey {
  id: string
  org: string
  tier: string
  expires_at: number | null
  models: string[] | null
  routes: string[] | null
}

/** Why the store could not be opened; `aside` is where an unreadable file was moved (null: not moved). */
export class KeyStoreError extends Error {
  readonly file: string
  readonly aside: string | null
  constructor(file: string, reason: string, aside: string | null) {
    super(`key store ${file}: ${reason}${aside !== null ? `; moved aside to ${aside}` : ''}`)
    this.file = file
    this.aside = aside
  }
}

interface RawRow extends Omit<KeyRow, 'models' | 'routes'> {
  models: string | null
  routes: string | null
}

function fromRaw(r: RawRow): KeyRow {
  return { ...r, models: r.models === null ? null : (JSON.parse(r.models) as string[]), routes: r.routes === null ? null : (JSON.parse(r.routes) as string[]) }
}

const CORRUPT = new Set(['SQLITE_NOTADB', 'SQLITE_CORRUPT'])

export class KeyStore {
  readonly file: string
  readonly #db: DB

  private constructor(file: string, db: DB) {
    this.file = file
    this.#db = db
  }

  /**
   * Open (creating it when missing, mode 0600) and migrate to KEY_STORE_VERSION. A file that is not a database or is
   * corrupt is moved aside when `moveCorrupt`; every failure is a KeyStoreError naming the file.
   */
  static open(file: string, opts: { moveCorrupt?: boolean; create?: boolean } = {}): KeyStore {
    let db: DB | null = null
    try {
      if (!existsSync(file)) {
        if (opts.create === false) throw Object.assign(new Error('does not exist'), { code: 'ENOENT' })
        closeSync(openSync(file, 'a', 0o600))
      }
      db = new Database(file, { timeout: 5_000 })
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      const check = db.pragma('quick_check', { simple: true })
      if (check !== 'ok') throw Object.assign(new Error(`corrupt: ${String(check)}`), { code: 'SQLITE_CORRUPT' })
      migrate(db)
      return new KeyStore(file, db)
    } catch (err) {
      db?.close()
      const code = (err as { code?: string }).code ?? ''
      if (err instanceof KeyStoreError) throw err
      const reason = (err as Error).message
      if (CORRUPT.has(code) && opts.moveCorrupt === true) throw new KeyStoreError(file, `not a usable SQLite database (${reason})`, moveAside(file))
      throw new KeyStoreError(file, reason, null)
    }
  }

  close(): void {
    this.#db.close()
  }

  /** Moves whenever another connection commits (cheap: no I/O beyond a shared-memory read in WAL mode). */
  dataVersion(): number {
    return this.#db.pragma('data_version', { simple: true }) as number
  }

  version(): number {
    return this.#db.pragma('user_version', { simple: true }) as number
  }

  list(): KeyRow[] {
    return (this.#db.prepare('SELECT * FROM keys ORDER BY id').all() as RawRow[]).map(fromRaw)
  }

  get(id: string): KeyRow | null {
    const r = this.#db.prepare('SELECT * FROM keys WHERE id = ?').get(id) as RawRow | undefined
    return r === undefined ? null : fromRaw(r)
  }

  /** Insert; false when the id (or, astronomically unlikely, the hash) exists. */
  create(k: NewKey, sha256: string, now: number): boolean {
    try {
      this.#db.prepare(`INSERT INTO keys (id, sha256, org, tier, created_at, expires_at, models, routes)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(
        k.id, sha256, k.org, k.tier, now, k.expires_at,
        k.models === null ? null : JSON.stringify(k.models), k.routes === null ? null : JSON.stringify(k.routes),
      )
      return true
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || (err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return false
      throw err
    }
  }

  /** Insert or replace a whole row (a copy from another proxy); false when its hash belongs to another id here. */
  upsert(r: KeyRow): boolean {
    try {
      this.#db.prepare(`INSERT OR REPLACE INTO keys (id, sha256, org, tier, created_at, expires_at, revoked_at, models, routes, prev_sha256, prev_until, rotated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
        r.id, r.sha256, r.org, r.tier, r.created_at, r.expires_at, r.revoked_at,
        r.models === null ? null : JSON.stringify(r.models), r.routes === null ? null : JSON.stringify(r.routes),
        r.prev_sha256, r.prev_until, r.rotated_at,
      )
      return true
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return false
      throw err
    }
  }

  /** Revoke (the row stays, for list and audit); null when there is no such key. Revoking twice keeps the first time. */
  revoke(id: string, now: number): KeyRow | null {
    this.#db.prepare('UPDATE keys SET revoked_at = coalesce(revoked_at, ?), prev_sha256 = NULL, prev_until = NULL WHERE id = ?').run(now, id)
    return this.get(id)
  }

  /** New secret hash; the old one stays valid until now + graceMs (0: at once). Null when missing or revoked. */
  rotate(id: string, sha256: string, graceMs: number, now: number): KeyRow | null {
    const r = this.#db.prepare(`UPDATE keys SET prev_sha256 = CASE WHEN ? > 0 THEN sha256 ELSE NULL END,
      prev_until = CASE WHEN ? > 0 THEN ? ELSE NULL END, sha256 = ?, rotated_at = ? WHERE id = ? AND revoked_at IS NULL`)
      .run(graceMs, graceMs, now + graceMs, sha256, now, id)
    return r.changes === 0 ? null : this.get(id)
  }
}

/** When a row last changed (created, rotated, revoked): the newer copy wins when proxies share keys. */
export function changedAt(r: KeyRow): number {
  return Math.max(r.created_at, r.rotated_at ?? 0, r.revoked_at ?? 0)
}

function migrate(db: DB): void {
  migrateDb(db, MIGRATIONS, (message) => new KeyStoreError(db.name, message, null))
}

/** For tests of migrations: a database at exactly `version`, made by the first `version` migrations. */
export function createAtVersion(file: string, version: number): DB {
  return createDbAtVersion(file, MIGRATIONS, version)
}
