// Shipping the ledger to Postgres for fleets (`ledger.postgres`): every proxy sends its own minute rows, each keyed
// by (proxy, minute, key, org, model, route, status class) and carrying its whole sums, never a delta — so a retry,
// or a batch sent twice across an upgrade, sets the same values instead of adding them again. Values only grow, and
// the upsert keeps the larger of the stored and the sent one, so an older generation's late batch cannot lower a row.
// Rows wait in SQLite (marked dirty) until Postgres has them: Postgres down means they ship later, never that a
// request waits — this runs on the generation's main thread, on a timer, one batch in flight at a time.
import os from 'node:os'
import pg from 'pg'
import type { Logger } from '../observability/logger.js'
import type { LedgerStore, ShipRow } from './store.js'

/** rows per INSERT (14 parameters each: well under Postgres's 65 535) */
const BATCH = 500

/** Numbered migrations of the Postgres schema; the version is kept in leaky_schema (component 'ledger'). */
export const PG_MIGRATIONS: readonly string[] = [
  `CREATE TABLE leaky_usage_minute (
    proxy TEXT NOT NULL, minute BIGINT NOT NULL, key TEXT NOT NULL, org TEXT NOT NULL, model TEXT NOT NULL,
    route TEXT NOT NULL, status_class SMALLINT NOT NULL,
    requests BIGINT NOT NULL, tokens_prompt BIGINT NOT NULL, tokens_completion BIGINT NOT NULL, tokens_cached BIGINT NOT NULL,
    tokens_thoughts BIGINT NOT NULL, tokens_total BIGINT NOT NULL, cost_micro BIGINT NOT NULL, unpriced BIGINT NOT NULL,
    shipped_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (proxy, minute, key, org, model, route, status_class))`,
]
export const PG_VERSION = PG_MIGRATIONS.length

const SUMS = ['requests', 'tokens_prompt', 'tokens_completion', 'tokens_cached', 'tokens_thoughts', 'tokens_total', 'cost_micro', 'unpriced']
const COLS = ['proxy', 'minute', 'key', 'org', 'model', 'route', 'status_class', ...SUMS]

export interface ShipCounters {
  shipped: number
  errors: number
}

/** Bring the database to PG_VERSION (under an advisory lock: proxies of a fleet start together). */
export async function migratePostgres(client: pg.ClientBase): Promise<number> {
  await client.query('BEGIN')
  try {
    // the lock key: "leaky" in ASCII, any constant all proxies agree on
    await client.query('SELECT pg_advisory_xact_lock(1818585451)')
    await client.query('CREATE TABLE IF NOT EXISTS leaky_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)')
    const r = await client.query<{ version: number }>("SELECT version FROM leaky_schema WHERE component = 'ledger'")
    const from = r.rows[0]?.version ?? 0
    if (from > PG_VERSION) throw new Error(`ledger schema version ${from} in Postgres was written by a newer leaky (this one knows up to ${PG_VERSION}); upgrade leaky`)
    for (let v = from; v < PG_VERSION; v++) await client.query(PG_MIGRATIONS[v])
    await client.query("INSERT INTO leaky_schema (component, version) VALUES ('ledger', $1) ON CONFLICT (component) DO UPDATE SET version = excluded.version", [PG_VERSION])
    await client.query('COMMIT')
    return from
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw err
  }
}

function upsert(n: number): string {
  const values: string[] = []
  for (let i = 0; i < n; i++) values.push(`(${COLS.map((_, j) => `$${i * COLS.length + j + 1}`).join(', ')})`)
  return `INSERT INTO leaky_usage_minute (${COLS.join(', ')}) VALUES ${values.join(', ')}
    ON CONFLICT (proxy, minute, key, org, model, route, status_class) DO UPDATE SET
    ${SUMS.map((c) => `${c} = GREATEST(leaky_usage_minute.${c}, excluded.${c})`).join(', ')}, shipped_at = now()`
}

/** The proxy id rows are shipped under: ledger.postgres.proxy, else the host name. */
export function proxyId(configured: string | undefined): string {
  return configured ?? os.hostname()
}

export class PostgresShipper {
  readonly counters: ShipCounters = { shipped: 0, errors: 0 }
  readonly proxy: string
  readonly #url: string
  readonly #logger: Logger
  #pool: pg.Pool | null = null
  #migrated = false
  #running: Promise<void> | null = null
  #failing = false

  constructor(url: string, proxy: string, logger: Logger) {
    this.#url = url
    this.proxy = proxy
    this.#logger = logger
  }

  get url(): string {
    return this.#url
  }

  #client(): pg.Pool {
    if (this.#pool === null) {
      // one connection: batches go one at a time; the timeouts bound a hung server, the rows stay queued meanwhile
      this.#pool = new pg.Pool({ connectionString: this.#url, max: 1, connectionTimeoutMillis: 5_000, query_timeout: 30_000, idleTimeoutMillis: 60_000 })
      this.#pool.on('error', () => undefined)
    }
    return this.#pool
  }

  /** Ship everything unshipped now (one run at a time; a second call joins the running one). */
  ship(store: LedgerStore): Promise<void> {
    this.#running ??= this.#ship(store).finally(() => (this.#running = null))
    return this.#running
  }

  async #ship(store: LedgerStore): Promise<void> {
    try {
      const pool = this.#client()
      if (!this.#migrated) {
        const c = await pool.connect()
        try {
          await migratePostgres(c)
        } finally {
          c.release()
        }
        this.#migrated = true
      }
      for (;;) {
        const rows = store.unshipped(BATCH)
        if (rows.length === 0) break
        await pool.query(upsert(rows.length), rows.flatMap((r: ShipRow) => [this.proxy, ...r]))
        store.markShipped(rows)
        this.counters.shipped += rows.length
        if (rows.length < BATCH) break
      }
      if (this.#failing) this.#logger.info({ msg: 'usage ledger ships to Postgres again', proxy: this.proxy })
      this.#failing = false
    } catch (err) {
      this.counters.errors++
      // one line per outage, not one per attempt; the rows stay in SQLite for the next one
      if (!this.#failing) this.#logger.error({ msg: 'usage ledger: shipping to Postgres failed; rows stay queued in SQLite', proxy: this.proxy, err: (err as Error).message })
      this.#failing = true
    }
  }

  async close(): Promise<void> {
    await this.#running
    const p = this.#pool
    this.#pool = null
    await p?.end().catch(() => undefined)
  }
}
