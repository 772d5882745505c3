// The usage ledger's SQLite file (better-sqlite3, WAL): usage and cost summed per (minute, key, org, model, route,
// status class), and the same sums per UTC day, which outlive the minute rows (README "Usage ledger and reports").
// One connection writes: the generation's main thread (writer.ts); an upgrade's next generation and the
// `leaky usage` CLI may open the file at the same time — SQLite serialises writers, and every write adds to a row
// (upsert with +=), so two writers never lose each other's counts.
//
// Schema version in PRAGMA user_version; MIGRATIONS[n - 1] takes a file from version n - 1 to n in one transaction
// with its version bump (the key store's discipline, src/store/key-store.ts): a file from any earlier release
// opens, one written by a newer release is refused rather than misread.
import Database from 'better-sqlite3'
import { closeSync, existsSync, openSync } from 'node:fs'
import { createAtVersion as createDbAtVersion, migrate as migrateDb, moveAside } from '../store/sqlite.js'
import { ROW_FIELDS, type LedgerRow } from './row.js'

type DB = Database.Database

const SUMS = `requests INTEGER NOT NULL DEFAULT 0,
    tokens_prompt INTEGER NOT NULL DEFAULT 0,
    tokens_completion INTEGER NOT NULL DEFAULT 0,
    tokens_cached INTEGER NOT NULL DEFAULT 0,
    tokens_thoughts INTEGER NOT NULL DEFAULT 0,
    tokens_total INTEGER NOT NULL DEFAULT 0,
    cost_micro INTEGER NOT NULL DEFAULT 0,
    unpriced INTEGER NOT NULL DEFAULT 0`
const DIMS = `key TEXT NOT NULL, org TEXT NOT NULL, model TEXT NOT NULL, route TEXT NOT NULL, status_class INTEGER NOT NULL`

/** Numbered migrations: index 0 makes version 1, and so on. Never edit a released one; append. */
export const MIGRATIONS: ReadonlyArray<(db: DB) => void> = [
  // 1: minute rows and day rows, one row per (time, key, org, model, route, status class)
  (db) => db.exec(`
    CREATE TABLE usage_minute (minute INTEGER NOT NULL, ${DIMS}, ${SUMS},
      PRIMARY KEY (minute, key, org, model, route, status_class)) WITHOUT ROWID;
    CREATE TABLE usage_day (day INTEGER NOT NULL, ${DIMS}, ${SUMS},
      PRIMARY KEY (day, key, org, model, route, status_class)) WITHOUT ROWID;
  `),
  // 2: which proxy wrote the file, so rows shipped elsewhere can say where they came from
  (db) => db.exec(`CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`),
  // 3: minute rows not yet shipped to Postgres (ledger.postgres; rows written without it are not shipped later)
  (db) => db.exec(`
    ALTER TABLE usage_minute ADD COLUMN dirty INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX usage_minute_dirty ON usage_minute (dirty) WHERE dirty = 1;
  `),
]

export const LEDGER_VERSION = MIGRATIONS.length

/** Why the ledger could not be opened; `aside` is where an unreadable file was moved (null: not moved). */
export class LedgerError extends Error {
  readonly file: string
  readonly aside: string | null
  constructor(file: string, reason: string, aside: string | null) {
    super(`usage ledger ${file}: ${reason}${aside !== null ? `; moved aside to ${aside}` : ''}`)
    this.file = file
    this.aside = aside
  }
}

const CORRUPT = new Set(['SQLITE_NOTADB', 'SQLITE_CORRUPT'])
const MINUTE_MS = 60_000
const DAY_MINUTES = 1440

/** Summed columns, in ROW_FIELDS order after the dimensions. */
const SUM_COLS = ['requests', 'tokens_prompt', 'tokens_completion', 'tokens_cached', 'tokens_thoughts', 'tokens_total', 'cost_micro', 'unpriced'] as const

// with shipping on, a minute row that changes is marked (dirty); day rows are not shipped
function upsertSql(table: string, time: string, dirty = false): string {
  return `INSERT INTO ${table} (${time}, key, org, model, route, status_class, ${SUM_COLS.join(', ')}${dirty ? ', dirty' : ''})
    VALUES (?, ?, ?, ?, ?, ?, ${SUM_COLS.map(() => '?').join(', ')}${dirty ? ', 1' : ''})
    ON CONFLICT (${time}, key, org, model, route, status_class) DO UPDATE SET
    ${SUM_COLS.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')}${dirty ? ', dirty = 1' : ''}`
}

/** A minute row as shipped: its whole sums, not a delta, so sending it twice sets the same values. */
export type ShipRow = LedgerRow

export class LedgerStore {
  readonly file: string
  readonly #db: DB
  readonly #minute: Database.Statement
  readonly #minuteShipped: Database.Statement
  readonly #day: Database.Statement
  /** ledger.postgres is configured: changed minute rows are marked for shipping (else no row waits in the index) */
  shipping = false
  readonly #write: (rows: LedgerRow[]) => void

  private constructor(file: string, db: DB) {
    this.file = file
    this.#db = db
    this.#minute = db.prepare(upsertSql('usage_minute', 'minute'))
    this.#minuteShipped = db.prepare(upsertSql('usage_minute', 'minute', true))
    this.#day = db.prepare(upsertSql('usage_day', 'day'))
    // one transaction per batch: a batch is in the file whole or not at all
    this.#write = db.transaction((rows: LedgerRow[]) => {
      const minute = this.shipping ? this.#minuteShipped : this.#minute
      for (const r of rows) {
        const sums = r.slice(ROW_FIELDS.requests)
        minute.run(r[0], r[1], r[2], r[3], r[4], r[5], ...sums)
        this.#day.run(Math.floor(r[0] / DAY_MINUTES), r[1], r[2], r[3], r[4], r[5], ...sums)
      }
    })
  }

  /**
   * Open (creating it, mode 0600, unless `create: false`) and migrate to LEDGER_VERSION. A file that is not a
   * database or is corrupt is moved aside when `moveCorrupt`; every failure is a LedgerError naming the file.
   */
  static open(file: string, opts: { moveCorrupt?: boolean; create?: boolean; readonly?: boolean } = {}): LedgerStore {
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
      // a file that opens but cannot be written (read-only file or directory) fails here, at start, not at the
      // first flush; the CLI only reads
      if (opts.readonly !== true) db.prepare("INSERT OR REPLACE INTO meta (name, value) VALUES ('opened_at', ?)").run(new Date().toISOString())
      return new LedgerStore(file, db)
    } catch (err) {
      db?.close()
      if (err instanceof LedgerError) throw err
      const code = (err as { code?: string }).code ?? ''
      const reason = (err as Error).message
      if (CORRUPT.has(code) && opts.moveCorrupt === true) throw new LedgerError(file, `not a usable SQLite database (${reason})`, moveAside(file))
      throw new LedgerError(file, reason, null)
    }
  }

  close(): void {
    this.#db.close()
  }

  version(): number {
    return this.#db.pragma('user_version', { simple: true }) as number
  }

  /** Add a batch of minute rows (and the same sums to their day rows), in one transaction. */
  write(rows: LedgerRow[]): void {
    if (rows.length > 0) this.#write(rows)
  }

  /** Drop minute rows older than `minuteMs` and day rows older than `dayMs` before `now`; how many went. */
  prune(now: number, minuteMs: number, dayMs: number): { minutes: number; days: number } {
    const m = this.#db.prepare('DELETE FROM usage_minute WHERE minute < ?').run(Math.floor((now - minuteMs) / MINUTE_MS))
    const d = this.#db.prepare('DELETE FROM usage_day WHERE day < ?').run(Math.floor((now - dayMs) / MINUTE_MS / DAY_MINUTES))
    return { minutes: m.changes, days: d.changes }
  }

  /** Up to `limit` minute rows changed since they were last shipped. */
  unshipped(limit: number): ShipRow[] {
    return this.#db.prepare(`SELECT minute, key, org, model, route, status_class, ${SUM_COLS.join(', ')} FROM usage_minute WHERE dirty = 1 LIMIT ?`)
      .raw().all(limit) as ShipRow[]
  }

  /** How many minute rows wait for shipping. */
  unshippedCount(): number {
    return (this.#db.prepare('SELECT count(*) AS n FROM usage_minute WHERE dirty = 1').get() as { n: number }).n
  }

  /**
   * Shipped: each row is clean unless it changed meanwhile (a flush while the batch was on its way adds at least one
   * request, so its request count no longer matches and it stays marked for the next batch).
   */
  markShipped(rows: ShipRow[]): void {
    const st = this.#db.prepare(`UPDATE usage_minute SET dirty = 0 WHERE minute = ? AND key = ? AND org = ? AND model = ? AND route = ? AND status_class = ? AND requests = ?`)
    this.#db.transaction(() => {
      for (const r of rows) st.run(r[0], r[1], r[2], r[3], r[4], r[5], r[6])
    })()
  }

  /** The oldest minute row's start (ms), or null when there is none: reports say which table they could use. */
  oldestMinute(): number | null {
    const r = this.#db.prepare('SELECT min(minute) AS m FROM usage_minute').get() as { m: number | null }
    return r.m === null ? null : r.m * MINUTE_MS
  }

  /** Read-only queries for reports (report.ts builds them from a fixed list of columns, never from input). */
  all(sql: string, params: unknown[]): Record<string, unknown>[] {
    return this.#db.prepare(sql).all(...params) as Record<string, unknown>[]
  }
}

function migrate(db: DB): void {
  migrateDb(db, MIGRATIONS, (message) => new LedgerError(db.name, message, null))
}

/** For tests of migrations: a database at exactly `version`, made by the first `version` migrations. */
export function createAtVersion(file: string, version: number): DB {
  return createDbAtVersion(file, MIGRATIONS, version)
}
