// Redaction for logs, /status and `leaky validate`: one walk of the config beside its schema; any value whose
// schema is marked `secret()` becomes "***". A new secret field is redacted by marking it, nothing else.
import type * as z from 'zod'
import { secrets } from './fields.js'
import { child, layers } from './walk.js'
import { configSchema, type Config } from './schema.js'

export const REDACTED = '***'

export function redact(config: Config): unknown {
  return redactWith(configSchema, config)
}

function redactWith(s: z.ZodType | null, v: unknown): unknown {
  if (v === undefined) return v
  if (s !== null && layers(s).some((l) => secrets.has(l))) return REDACTED
  if (Array.isArray(v)) return v.map((item: unknown, i) => redactWith(s && child(s, i), item))
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, item] of Object.entries(v)) out[k] = redactWith(s && child(s, k), item)
    return out
  }
  return v
}
