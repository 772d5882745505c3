// What a reload changed. Sections that only shape how requests are handled are swapped in place (SIGHUP); the
// ones fixed when a generation starts (listening sockets, thread count, the bucket table's SharedArrayBuffer size)
// need a new generation (SIGUSR2).
import type { Config } from './schema.js'

export interface ConfigDiff {
  /** top-level sections that changed and apply with a reload */
  inPlace: string[]
  /** changed settings that take effect only after an upgrade (new generation) */
  needsUpgrade: string[]
}

/** Settings inside a section that need an upgrade; the rest of that section applies in place. */
const UPGRADE_ONLY: Partial<Record<keyof Config, readonly string[]>> = {
  listen: [],
  listen_plain: [],
  workers: [],
  limits_table: ['capacity'],
  admin: ['listen'],
  // uWS reads its head limit (UWS_HTTP_MAX_HEADERS_SIZE, derived from it) once per process: server/head-limit.ts
  server: ['max_header'],
  // the key store is opened once per generation
  key_store: ['file', 'shared'],
}

function same(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b)
}

// map keys sorted: moving a limit or upstream within its map changes nothing; list order (routes) does matter
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort()
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`
  }
  return v === undefined ? 'undefined' : JSON.stringify(v)
}

export function diffConfig(a: Config, b: Config): ConfigDiff {
  const inPlace: string[] = []
  const needsUpgrade: string[] = []
  const sections = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof Config>
  for (const section of sections) {
    const x: unknown = a[section]
    const y: unknown = b[section]
    if (same(x, y)) continue
    const upgradeKeys = UPGRADE_ONLY[section]
    if (upgradeKeys === undefined) {
      inPlace.push(section)
    } else if (upgradeKeys.length === 0) {
      needsUpgrade.push(section)
    } else {
      const xs = (x ?? {}) as Record<string, unknown>
      const ys = (y ?? {}) as Record<string, unknown>
      for (const k of upgradeKeys) if (!same(xs[k], ys[k])) needsUpgrade.push(`${section}.${k}`)
      const rest = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([k]) => !upgradeKeys.includes(k)))
      if (!same(rest(xs), rest(ys))) inPlace.push(section)
    }
  }
  return { inPlace, needsUpgrade }
}
