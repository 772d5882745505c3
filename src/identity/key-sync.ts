// Runtime keys shared by several proxies through Redis (`key_store.shared: redis`). Each proxy keeps its SQLite
// store as the copy its workers are served from (so a Redis outage never stops key lookups); Redis holds one hash of
// every key's row (id → JSON) and a channel that says "something changed". A proxy that changes a key locally (admin
// API, CLI) writes the rows that are newer than Redis's and publishes; every proxy then reads the hash and takes the
// rows newer than its own (created, rotated, revoked: the latest change wins), and pushes them to its workers. A
// one-second poll of the hash covers a missed message (subscriber reconnecting).
import { Redis } from 'ioredis'
import type { Logger } from '../observability/logger.js'
import { changedAt, type KeyRow } from '../store/key-store.js'
import type { KeyService } from './key-service.js'

const POLL_MS = 1_000

export class KeySync {
  readonly #pub: Redis
  readonly #sub: Redis
  readonly #hash: string
  readonly #channel: string
  readonly #keys: KeyService
  readonly #changed: () => void
  readonly #logger: Logger
  /** Redis's rows as last read (id → JSON), to write only what is newer */
  #remote = new Map<string, KeyRow>()
  #timer: NodeJS.Timeout | null = null
  #failing = false
  #pulling: Promise<void> | null = null

  constructor(url: string, prefix: string, keys: KeyService, changed: () => void, logger: Logger) {
    const opts = { maxRetriesPerRequest: 1, retryStrategy: (n: number) => Math.min(n * 100, 1000) }
    this.#pub = new Redis(url, opts)
    this.#sub = new Redis(url, opts)
    this.#hash = `${prefix}keys`
    this.#channel = `${prefix}keys:changed`
    this.#keys = keys
    this.#changed = changed
    this.#logger = logger
    for (const r of [this.#pub, this.#sub]) r.on('error', (err: Error) => this.#fail(err))
  }

  start(): void {
    this.#sub.subscribe(this.#channel).catch((err: Error) => this.#fail(err))
    this.#sub.on('message', () => void this.pull())
    this.#timer = setInterval(() => void this.pull(), POLL_MS)
    this.#timer.unref()
    // what this proxy has that the others lack (keys made while it ran alone) goes up first
    void this.pull().then(() => this.push())
  }

  /** Take the rows newer than ours from Redis; tell the workers when any came. */
  pull(): Promise<void> {
    this.#pulling ??= this.#pull().finally(() => (this.#pulling = null))
    return this.#pulling
  }

  async #pull(): Promise<void> {
    const store = this.#keys.store
    if (store === null) return
    let all: Record<string, string>
    try {
      all = await this.#pub.hgetall(this.#hash)
    } catch (err) {
      return this.#fail(err as Error)
    }
    this.#ok()
    const remote = new Map<string, KeyRow>()
    let took = 0
    for (const [id, json] of Object.entries(all)) {
      let row: KeyRow
      try {
        row = JSON.parse(json) as KeyRow
      } catch {
        continue
      }
      remote.set(id, row)
      const mine = store.get(id)
      if (mine !== null && changedAt(mine) >= changedAt(row)) continue
      if (store.upsert(row)) took++
      else this.#logger.warn({ msg: 'shared key skipped: its hash belongs to another key id here', key_id: id })
    }
    this.#remote = remote
    if (took > 0) {
      this.#keys.refresh(true)
      this.#changed()
    }
  }

  /** Write our rows that are newer than Redis's, and say so on the channel. */
  async push(): Promise<void> {
    const newer = this.#keys.rows.filter((r) => {
      const there = this.#remote.get(r.id)
      return there === undefined || changedAt(r) > changedAt(there)
    })
    if (newer.length === 0) return
    try {
      const fields: string[] = []
      for (const r of newer) fields.push(r.id, JSON.stringify(r))
      await this.#pub.hset(this.#hash, ...fields)
      for (const r of newer) this.#remote.set(r.id, r)
      await this.#pub.publish(this.#channel, String(newer.length))
    } catch (err) {
      this.#fail(err as Error)
    }
  }

  #fail(err: Error): void {
    if (this.#failing) return
    this.#failing = true
    this.#logger.warn({ msg: 'shared key store: Redis unavailable; this proxy serves its own copy of the keys until it is back', err: err.message })
  }

  #ok(): void {
    if (!this.#failing) return
    this.#failing = false
    this.#logger.info({ msg: 'shared key store: Redis is back' })
    void this.push()
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#pub.disconnect()
    this.#sub.disconnect()
  }
}
