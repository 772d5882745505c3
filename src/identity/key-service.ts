// Runtime keys as the admin API and the `leaky key` CLI see them: input checked (400 naming the field), the secret
// made here and shown once, only its sha256 stored, every change audited. The generation's main thread owns one
// KeyService; it pushes the key list to its workers when it changes a key itself and when another process (the CLI,
// another generation) has committed a change, which PRAGMA data_version reveals at the next poll.
import { createHash, randomBytes } from 'node:crypto'
import path from 'node:path'
import * as z from 'zod'
import type { Config } from '../config/index.js'
import { parseDuration } from '../config/units.js'
import type { ErrorCode } from '../errors.js'
import type { AuditLog } from '../audit/audit-log.js'
import { KeyStore, KeyStoreError, type KeyRow } from '../store/key-store.js'

const KEY_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/

/** Who did it, for the audit log: an admin token's id and role, or the CLI's user. */
export interface Actor {
  via: 'admin-api' | 'cli'
  token_id?: string
  role?: string
  user?: string
}

/** A key as listed: runtime keys and the config file's (read-only), never a hash or secret. */
export interface KeyView {
  id: string
  source: 'config' | 'runtime'
  read_only: boolean
  state: 'active' | 'expired' | 'revoked'
  org: string
  tier: string
  created_at: string | null
  expires_at: string | null
  revoked_at: string | null
  rotated_at: string | null
  /** the previous secret is accepted until then (rotation grace) */
  grace_until: string | null
  models: string[] | null
  routes: string[] | null
}

export type KeyResult =
  | { ok: true; status: number; key: KeyView; secret?: string }
  | { ok: false; code: ErrorCode; message: string }

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString())

const durationText = z.string().transform((v, ctx) => {
  const r = parseDuration(v)
  if (!r.ok) {
    ctx.addIssue({ code: 'custom', message: r.message })
    return z.NEVER
  }
  if (r.value <= 0) {
    ctx.addIssue({ code: 'custom', message: 'must be longer than 0' })
    return z.NEVER
  }
  return r.value
})

export const createInput = z.strictObject({
  id: z.string().regex(KEY_ID_RE, 'key ids may use letters, digits, "_", "." and "-" (1 to 64 characters)'),
  org: z.string().max(128).optional(),
  tier: z.string().max(64).optional(),
  expires: durationText.optional(),
  models: z.array(z.string().min(1).max(200)).min(1).max(256).optional(),
  routes: z.array(z.string().startsWith('/', 'a route prefix starts with "/"').max(512)).min(1).max(256).optional(),
})

export const rotateInput = z.strictObject({
  grace: z.union([durationText, z.literal('0')]).optional(),
})

/** The first problem of a zod failure, as "field: message". */
export function firstIssue(err: z.ZodError): string {
  const i = err.issues[0]
  const at = i.path.length > 0 ? i.path.join('.') : ''
  if (i.code === 'unrecognized_keys') return `unknown field "${i.keys[0]}"`
  return at === '' ? i.message : `${at}: ${i.message}`
}

/** Where the store lives: key_store.file, else beside state_file; null: runtime keys off. */
export function keyStoreFile(config: Config): string | null {
  if (config.key_store.file !== undefined) return config.key_store.file
  if (config.state_file !== undefined) return path.join(path.dirname(config.state_file), 'leaky-keys.sqlite')
  return null
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

/** A new secret: 32 random bytes, base64url, with a prefix that secret scanners can recognise. */
export function newSecret(): string {
  return `lk-${randomBytes(32).toString('base64url')}`
}

export class KeyService {
  config: Config
  readonly store: KeyStore | null
  /** why runtime keys are off (null: on) */
  readonly disabled: string | null
  readonly #audit: AuditLog
  #rows: KeyRow[] = []
  #seen = -1

  constructor(config: Config, store: KeyStore | null, disabled: string | null, audit: AuditLog) {
    this.config = config
    this.store = store
    this.disabled = disabled
    this.#audit = audit
    this.refresh(true)
  }

  /** Open the configured store; a failure (reported in `disabled`) leaves runtime keys off, never stops the proxy. */
  static open(config: Config, audit: AuditLog, moveCorrupt: boolean): KeyService {
    const file = keyStoreFile(config)
    if (file === null) return new KeyService(config, null, 'no key store: set key_store.file or state_file', audit)
    try {
      return new KeyService(config, KeyStore.open(file, { moveCorrupt }), null, audit)
    } catch (err) {
      const msg = err instanceof KeyStoreError ? err.message : `key store ${file}: ${(err as Error).message}`
      return new KeyService(config, null, msg, audit)
    }
  }

  get rows(): readonly KeyRow[] {
    return this.#rows
  }

  /** Re-read the rows when another connection committed since the last look; true when they changed. */
  refresh(force = false): boolean {
    if (this.store === null) return false
    const v = this.store.dataVersion()
    if (!force && v === this.#seen) return false
    this.#seen = v
    this.#rows = this.store.list()
    return true
  }

  list(now = Date.now()): KeyView[] {
    const out: KeyView[] = this.config.keys.map((k) => ({
      id: k.id, source: 'config', read_only: true, state: 'active', org: k.org ?? '', tier: k.tier ?? '', created_at: null,
      expires_at: null, revoked_at: null, rotated_at: null, grace_until: null, models: null, routes: null,
    }))
    for (const r of this.#rows) out.push(view(r, now))
    return out
  }

  create(body: unknown, actor: Actor, now = Date.now()): KeyResult {
    const store = this.store
    if (store === null) return this.#off(actor, 'create', typeof (body as { id?: unknown })?.id === 'string' ? (body as { id: string }).id : '')
    const p = createInput.safeParse(body)
    if (!p.success) return { ok: false, code: 'LEAKY_BAD_REQUEST', message: firstIssue(p.error) }
    const k = p.data
    if (k.tier !== undefined && !(k.tier in this.config.tiers)) {
      return { ok: false, code: 'LEAKY_BAD_REQUEST', message: `tier: no tier "${k.tier}" in the config (tiers: ${Object.keys(this.config.tiers).join(', ') || 'none'})` }
    }
    if (this.config.keys.some((c) => c.id === k.id)) {
      this.#log(actor, 'create', k.id, 'conflict')
      return { ok: false, code: 'LEAKY_KEY_EXISTS', message: `key "${k.id}" exists in the config file` }
    }
    const secret = newSecret()
    const made = store.create({
      id: k.id, org: k.org ?? '', tier: k.tier ?? '', expires_at: k.expires === undefined ? null : now + k.expires,
      models: k.models ?? null, routes: k.routes ?? null,
    }, hashSecret(secret), now)
    if (!made) {
      this.#log(actor, 'create', k.id, 'conflict')
      return { ok: false, code: 'LEAKY_KEY_EXISTS', message: `key "${k.id}" exists (revoked keys keep their id)` }
    }
    this.refresh(true)
    const row = store.get(k.id)!
    this.#log(actor, 'create', k.id, 'ok', { org: row.org, tier: row.tier, expires_at: iso(row.expires_at), models: row.models, routes: row.routes })
    return { ok: true, status: 201, key: view(row, now), secret }
  }

  revoke(id: string, actor: Actor, now = Date.now()): KeyResult {
    if (this.store === null) return this.#off(actor, 'revoke', id)
    if (this.config.keys.some((c) => c.id === id)) return this.#readOnly(actor, 'revoke', id)
    if (this.store.get(id) === null) return this.#missing(actor, 'revoke', id)
    const row = this.store.revoke(id, now)!
    this.refresh(true)
    this.#log(actor, 'revoke', id, 'ok')
    return { ok: true, status: 200, key: view(row, now) }
  }

  rotate(id: string, body: unknown, actor: Actor, now = Date.now()): KeyResult {
    if (this.store === null) return this.#off(actor, 'rotate', id)
    const p = rotateInput.safeParse(body ?? {})
    if (!p.success) return { ok: false, code: 'LEAKY_BAD_REQUEST', message: firstIssue(p.error) }
    if (this.config.keys.some((c) => c.id === id)) return this.#readOnly(actor, 'rotate', id)
    const cur = this.store.get(id)
    if (cur === null) return this.#missing(actor, 'rotate', id)
    if (cur.revoked_at !== null) {
      this.#log(actor, 'rotate', id, 'conflict')
      return { ok: false, code: 'LEAKY_KEY_EXISTS', message: `key "${id}" is revoked; create a new key` }
    }
    const grace = p.data.grace === undefined || p.data.grace === '0' ? 0 : p.data.grace
    const secret = newSecret()
    const row = this.store.rotate(id, hashSecret(secret), grace, now)!
    this.refresh(true)
    this.#log(actor, 'rotate', id, 'ok', { grace_until: iso(row.prev_until) })
    return { ok: true, status: 200, key: view(row, now), secret }
  }

  close(): void {
    this.store?.close()
  }

  #off(actor: Actor, action: string, id: string): KeyResult {
    this.#log(actor, action, id, 'disabled')
    return { ok: false, code: 'LEAKY_KEYS_DISABLED', message: `runtime keys are disabled: ${this.disabled}` }
  }

  #readOnly(actor: Actor, action: string, id: string): KeyResult {
    this.#log(actor, action, id, 'read_only')
    return { ok: false, code: 'LEAKY_KEY_READ_ONLY', message: `key "${id}" comes from the config file (read-only): edit the YAML and reload` }
  }

  #missing(actor: Actor, action: string, id: string): KeyResult {
    this.#log(actor, action, id, 'not_found')
    return { ok: false, code: 'LEAKY_KEY_NOT_FOUND', message: `no runtime key "${id}"` }
  }

  #log(actor: Actor, action: string, id: string, result: string, detail: Record<string, unknown> = {}): void {
    this.#audit.write({ event: 'key', action, target: id, result, ...actor, ...detail })
  }
}

function view(r: KeyRow, now: number): KeyView {
  const state = r.revoked_at !== null ? 'revoked' : r.expires_at !== null && r.expires_at <= now ? 'expired' : 'active'
  return {
    id: r.id, source: 'runtime', read_only: false, state, org: r.org, tier: r.tier, created_at: iso(r.created_at),
    expires_at: iso(r.expires_at), revoked_at: iso(r.revoked_at), rotated_at: iso(r.rotated_at),
    grace_until: r.prev_until !== null && r.prev_until > now ? iso(r.prev_until) : null, models: r.models, routes: r.routes,
  }
}
