// `leaky key create | list | revoke | rotate`: the runtime key store, opened directly (the SQLite file of the config's
// key_store), so it works whether or not the proxy runs; a running proxy sees the change at its next poll
// (key_store.poll) and pushes it to its workers. Each change is audited as coming from the CLI and this user.
import os from 'node:os'
import type { Config } from '../config/index.js'
import { AuditLog } from '../audit/audit-log.js'
import { KeyService, type Actor, type KeyResult, type KeyView } from '../identity/key-service.js'
import { EXIT } from '../errors.js'

type Out = { stdout: (s: string) => void; stderr: (s: string) => void }

function open(config: Config, out: Out): { keys: KeyService; audit: AuditLog } | null {
  const audit = new AuditLog(config.audit.file, (err, file) => out.stderr(`leaky: audit log ${file}: ${err.message}\n`))
  const keys = KeyService.open(config, audit, false)
  if (keys.disabled !== null) {
    out.stderr(`leaky: ${keys.disabled}\n`)
    audit.close()
    return null
  }
  return { keys, audit }
}

function actor(): Actor {
  let user = String(process.getuid?.() ?? '')
  try {
    user = os.userInfo().username
  } catch {
    // no passwd entry (containers): the uid says who
  }
  return { via: 'cli', user }
}

function csv(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined
  return v.split(',').map((s) => s.trim()).filter((s) => s !== '')
}

function report(r: KeyResult, json: boolean, out: Out, verb: string): number {
  if (!r.ok) {
    out.stderr(`leaky: ${r.message} (${r.code})\n`)
    return EXIT.FAILED
  }
  if (json) {
    out.stdout(`${JSON.stringify(r.secret === undefined ? { key: r.key } : { key: r.key, secret: r.secret })}\n`)
    return EXIT.OK
  }
  out.stdout(`${verb} key ${r.key.id}${describe(r.key)}\n`)
  if (r.secret !== undefined) out.stdout(`secret (shown once; only its sha256 is kept): ${r.secret}\n`)
  if (r.key.grace_until !== null) out.stdout(`the previous secret is accepted until ${r.key.grace_until}\n`)
  return EXIT.OK
}

function describe(k: KeyView): string {
  const parts: string[] = []
  if (k.org !== '') parts.push(`org ${k.org}`)
  if (k.tier !== '') parts.push(`tier ${k.tier}`)
  if (k.expires_at !== null) parts.push(`expires ${k.expires_at}`)
  if (k.models !== null) parts.push(`models ${k.models.join(',')}`)
  if (k.routes !== null) parts.push(`routes ${k.routes.join(',')}`)
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`
}

export interface CreateOptions {
  id: string
  org?: string
  tier?: string
  expires?: string
  models?: string
  routes?: string
  json?: boolean
}

export function keyCreate(config: Config, o: CreateOptions, out: Out): number {
  const s = open(config, out)
  if (s === null) return EXIT.FAILED
  try {
    const body = { id: o.id, org: o.org, tier: o.tier, expires: o.expires, models: csv(o.models), routes: csv(o.routes) }
    return report(s.keys.create(body, actor()), o.json === true, out, 'created')
  } finally {
    s.keys.close()
    s.audit.close()
  }
}

export function keyRevoke(config: Config, id: string, json: boolean, out: Out): number {
  const s = open(config, out)
  if (s === null) return EXIT.FAILED
  try {
    return report(s.keys.revoke(id, actor()), json, out, 'revoked')
  } finally {
    s.keys.close()
    s.audit.close()
  }
}

export function keyRotate(config: Config, id: string, grace: string | undefined, json: boolean, out: Out): number {
  const s = open(config, out)
  if (s === null) return EXIT.FAILED
  try {
    return report(s.keys.rotate(id, grace === undefined ? {} : { grace }, actor()), json, out, 'rotated')
  } finally {
    s.keys.close()
    s.audit.close()
  }
}

export function keyList(config: Config, json: boolean, out: Out): number {
  const s = open(config, out)
  if (s === null) return EXIT.FAILED
  try {
    const all = s.keys.list()
    if (json) {
      out.stdout(`${JSON.stringify({ keys: all })}\n`)
      return EXIT.OK
    }
    const rows = [['ID', 'SOURCE', 'STATE', 'ORG', 'TIER', 'EXPIRES', 'MODELS', 'ROUTES']]
    for (const k of all) {
      rows.push([k.id, k.read_only ? 'config (read-only)' : 'runtime', k.state, k.org || '-', k.tier || '-', k.expires_at ?? '-', k.models?.join(',') ?? '*', k.routes?.join(',') ?? '*'])
    }
    const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
    for (const r of rows) out.stdout(`${r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd()}\n`)
    return EXIT.OK
  } finally {
    s.keys.close()
    s.audit.close()
  }
}
