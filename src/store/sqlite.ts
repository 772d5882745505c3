// What every SQLite store of the proxy does alike (runtime keys: key-store.ts; usage ledger: src/ledger/store.ts):
// numbered migrations recorded in user_version, each in its own transaction; a file written by a newer leaky
// refused; an unusable file moved aside for inspection.
import Database from 'better-sqlite3'
import { renameSync } from 'node:fs'

export type DB = Database.Database
export type Migration = (db: DB) => void

/**
 * Bring `db` to `migrations.length`, one migration per transaction. A newer schema than this leaky knows is refused
 * with `newer(from)`, the error the store throws.
 */
export function migrate(db: DB, migrations: readonly Migration[], newer: (message: string) => Error): void {
  const to = migrations.length
  const from = db.pragma('user_version', { simple: true }) as number
  if (from > to) throw newer(`schema version ${from} was written by a newer leaky (this one reads up to ${to}); upgrade leaky`)
  for (let v = from; v < to; v++) {
    db.transaction(() => {
      migrations[v](db)
      db.pragma(`user_version = ${v + 1}`)
    }).immediate()
  }
}

/** Rename an unusable database (and its WAL files) to `<file>.bad-<time>`, kept for inspection; null if it could not. */
export function moveAside(file: string): string | null {
  const aside = `${file}.bad-${new Date().toISOString().replace(/[:.]/g, '-')}`
  try {
    renameSync(file, aside)
  } catch {
    return null
  }
  for (const ext of ['-wal', '-shm']) {
    try {
      renameSync(file + ext, aside + ext)
    } catch {
      // no such file: nothing to keep
    }
  }
  return aside
}

/** For tests of migrations: a database at exactly `version`, made by the first `version` migrations. */
export function createAtVersion(file: string, migrations: readonly Migration[], version: number): DB {
  const db = new Database(file)
  for (let v = 0; v < version; v++) {
    migrations[v](db)
    db.pragma(`user_version = ${v + 1}`)
  }
  return db
}
