// The usage ledger's one writer, on the generation's main thread: workers post their summed rows (outbox.ts), this
// merges them per (minute, key, org, model, route, status class) and writes the merged rows to SQLite in one
// transaction every `ledger.flush`, and once more when the generation stops (SIGTERM, upgrade), after every worker
// has drained and handed over its last rows. A kill -9 loses what was not yet written: at most one flush interval
// (plus the workers' last second). A failed write keeps the rows for the next flush (bounded: past MAX_PENDING
// distinct rows the newest are dropped and counted), so a full disk costs history, never a request.
import type { Config } from '../config/index.js'
import type { Logger } from '../observability/logger.js'
import { ledgerFile } from './file.js'
import { LedgerError, LedgerStore } from './store.js'
import { addInto, rowKey, type LedgerRow, type UsageBatch } from './row.js'
import { PostgresShipper, proxyId } from './postgres.js'
import { AnomalyDetector, type Anomaly } from './anomaly.js'

/** distinct rows held while writes fail (one per key × model × route × minute): ~100 MB at most */
const MAX_PENDING = 500_000
/** retention runs this often (and at start) */
const PRUNE_MS = 3_600_000
/** a minute is judged this long after it ends: the workers hand their rows over within a second */
const JUDGE_DELAY_MS = 5_000
/** on stop, how long the last shipping to Postgres may take (what is left ships from the next start) */
const LAST_SHIP_MS = 3_000

export interface LedgerCounters {
  /** rows written (merged minute rows, each also added to its day row) */
  rows: number
  /** flushes that failed (the rows stay pending) */
  writeErrors: number
  /** rows dropped: pending full while writes failed */
  dropped: number
  /** requests summed into rows that reached the file */
  requests: number
}

export class LedgerWriter {
  readonly counters: LedgerCounters = { rows: 0, writeErrors: 0, dropped: 0, requests: 0 }
  readonly #logger: Logger
  #store: LedgerStore | null = null
  /** why the ledger is off (null: on) */
  disabled: string | null = 'not opened'
  /** configured, but its file could not be opened */
  openFailed = false
  #pending = new Map<string, LedgerRow>()
  #flushTimer: NodeJS.Timeout | null = null
  #pruneTimer: NodeJS.Timeout | null = null
  #config: Config['ledger'] | null = null
  #failing = false
  /** ledger.postgres: null when not configured */
  shipper: PostgresShipper | null = null
  #shipTimer: NodeJS.Timeout | null = null
  /** ledger.anomaly: fed from the same batches (null until the first configure) */
  anomalies: AnomalyDetector | null = null
  #judgeTimer: NodeJS.Timeout | null = null
  /** each anomaly judged, after its log line and count (the generation sends it to the anomaly webhooks) */
  onAnomaly: ((a: Anomaly) => void) | null = null

  constructor(logger: Logger) {
    this.#logger = logger
  }

  get store(): LedgerStore | null {
    return this.#store
  }

  /** the current shipper's counters (zero without ledger.postgres) */
  get shipped(): { shipped: number; errors: number } {
    return this.shipper?.counters ?? { shipped: 0, errors: 0 }
  }

  get pendingRows(): number {
    return this.#pending.size
  }

  /** the file in use (null: off) */
  get file(): string | null {
    return this.#store?.file ?? null
  }

  /**
   * Open the file named by the config (start), or switch to another one (reload). An unusable file is a clear error
   * line, moved aside when it is not a database; the proxy serves on with the ledger off (leaky_ledger_enabled 0).
   */
  configure(config: Config): void {
    const file = ledgerFile(config)
    this.#config = config.ledger
    if (this.anomalies === null) this.anomalies = new AnomalyDetector(config.ledger.anomaly, this.#logger)
    else this.anomalies.configure(config.ledger.anomaly)
    if (file === this.#store?.file) return this.#arm()
    if (this.#store !== null) {
      this.flush()
      this.#disarm()
      if (this.shipper !== null) void this.shipper.close()
      this.shipper = null
      this.#store.close()
      this.#store = null
    }
    this.openFailed = false
    if (file === null) {
      this.disabled = 'no ledger: set ledger.file or state_file'
      this.#pending.clear()
      return this.#disarm()
    }
    try {
      this.#store = LedgerStore.open(file, { moveCorrupt: true })
      this.disabled = null
      this.#logger.info({ msg: 'usage ledger open', file, version: this.#store.version() })
    } catch (err) {
      const e = err as LedgerError
      this.disabled = e.message
      this.openFailed = true
      this.#pending.clear()
      this.#logger.error({ msg: 'usage ledger disabled; the proxy serves without it', file, reason: e.message, moved_to: e.aside ?? undefined })
      return this.#disarm()
    }
    this.#arm()
    this.prune()
  }

  /** Judge the minutes up to `minute` (the timer's work): the anomalies found, each also handed to onAnomaly. */
  judge(minute: number): Anomaly[] {
    const found = this.anomalies?.judge(minute) ?? []
    if (this.onAnomaly !== null) for (const a of found) this.onAnomaly(a)
    return found
  }

  #arm(): void {
    this.#disarm()
    if (this.#store === null || this.#config === null) return
    this.#flushTimer = setInterval(() => this.flush(), this.#config.flush)
    this.#flushTimer.unref()
    this.#pruneTimer = setInterval(() => this.prune(), PRUNE_MS)
    this.#pruneTimer.unref()
    this.#judgeTimer = setInterval(() => this.judge(Math.floor((Date.now() - JUDGE_DELAY_MS) / 60_000)), 10_000)
    this.#judgeTimer.unref()
    const pgc = this.#config.postgres
    const proxy = pgc === undefined ? '' : proxyId(pgc.proxy)
    if (this.shipper !== null && (pgc === undefined || pgc.url !== this.shipper.url || proxy !== this.shipper.proxy)) {
      void this.shipper.close()
      this.shipper = null
    }
    this.#store.shipping = pgc !== undefined
    if (pgc === undefined) return
    if (this.shipper === null) {
      this.shipper = new PostgresShipper(pgc.url, proxy, this.#logger)
      this.#logger.info({ msg: 'usage ledger ships to Postgres', proxy, interval_ms: pgc.interval })
    }
    this.#shipTimer = setInterval(() => void this.ship(), pgc.interval)
    this.#shipTimer.unref()
  }

  #disarm(): void {
    if (this.#flushTimer !== null) clearInterval(this.#flushTimer)
    if (this.#pruneTimer !== null) clearInterval(this.#pruneTimer)
    if (this.#shipTimer !== null) clearInterval(this.#shipTimer)
    if (this.#judgeTimer !== null) clearInterval(this.#judgeTimer)
    this.#flushTimer = this.#pruneTimer = this.#shipTimer = this.#judgeTimer = null
  }

  /** Write what is pending, then send the unshipped rows to Postgres (when configured). */
  async ship(): Promise<void> {
    if (this.shipper === null || this.#store === null) return
    this.flush()
    await this.shipper.ship(this.#store)
  }

  /** A worker's batch: merged into the pending rows (nothing else happens on this thread per batch). */
  take(b: UsageBatch): void {
    if (this.#store === null) return
    this.anomalies?.observe(b.rows)
    for (const r of b.rows) {
      const k = rowKey(r[0], r[1], r[2], r[3], r[4], r[5])
      const cur = this.#pending.get(k)
      if (cur !== undefined) addInto(cur, r)
      else if (this.#pending.size < MAX_PENDING) this.#pending.set(k, r)
      else this.counters.dropped++
    }
  }

  /** Write the pending rows now, in one transaction; on failure they stay for the next flush. */
  flush(): void {
    if (this.#store === null || this.#pending.size === 0) return
    const rows = [...this.#pending.values()]
    try {
      this.#store.write(rows)
    } catch (err) {
      this.counters.writeErrors++
      if (!this.#failing) this.#logger.error({ msg: 'usage ledger write failed; rows kept for the next flush', file: this.#store.file, rows: rows.length, err: (err as Error).message })
      this.#failing = true
      return
    }
    if (this.#failing) this.#logger.info({ msg: 'usage ledger writes again', file: this.#store.file })
    this.#failing = false
    this.#pending.clear()
    this.counters.rows += rows.length
    for (const r of rows) this.counters.requests += r[6]
  }

  /** Drop rows past their retention. */
  prune(now = Date.now()): void {
    if (this.#store === null || this.#config === null) return
    try {
      const gone = this.#store.prune(now, this.#config.retention.minutes, this.#config.retention.days)
      if (gone.minutes + gone.days > 0) this.#logger.info({ msg: 'usage ledger pruned', minute_rows: gone.minutes, day_rows: gone.days })
    } catch (err) {
      this.#logger.error({ msg: 'usage ledger prune failed', err: (err as Error).message })
    }
  }

  /**
   * Last flush and close (the generation stops: its workers have drained and handed over everything). With Postgres,
   * one last shipping, bounded: rows it does not get to stay marked in the file and ship from the next start.
   */
  async close(): Promise<void> {
    this.#disarm()
    this.flush()
    const shipper = this.shipper
    this.shipper = null
    if (shipper !== null && this.#store !== null) {
      let timer: NodeJS.Timeout | undefined
      const last = await Promise.race([
        shipper.ship(this.#store).then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(resolve, LAST_SHIP_MS, false))),
      ])
      clearTimeout(timer)
      if (last) await shipper.close()
      else void shipper.close()
    }
    this.#store?.close()
    this.#store = null
  }
}
