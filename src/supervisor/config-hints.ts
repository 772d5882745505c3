// What a config file says about where its master is (listen, pid_file), read from the YAML without validating it:
// `leaky reload -c FILE` must find the master of a file that is broken (the reload is there to report that), and an
// admin's shell often lacks the ${env:…} values the service has.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { parseDocument } from 'yaml'
import { interpolateEnv } from '../config/env.js'
import { listen as listenField } from '../config/fields.js'

export interface ConfigHints {
  /** the pid_file setting; undefined when the file has none, null when it has one this shell cannot resolve */
  pidFile: string | null | undefined
  /** the listen address, normalised as the master has it; null when it cannot be read here */
  listen: string | null
}

const DEFAULT_LISTEN = '0.0.0.0:8080'

/** null when absent, the text with ${env:…} resolved, or false when it is not a string or does not resolve here. */
function setting(raw: Record<string, unknown>, key: string, env: NodeJS.ProcessEnv, dir: string): string | null | false {
  if (!(key in raw) || raw[key] === null) return null
  const v = raw[key]
  if (typeof v !== 'string') return false
  const r = interpolateEnv(v, env, dir)
  return r.ok ? r.value : false
}

export function readConfigHints(file: string, env: NodeJS.ProcessEnv = process.env): ConfigHints {
  let raw: unknown
  try {
    // a partial tree is fine here: whatever top-level keys parsed are still the file's own
    raw = parseDocument(readFileSync(file, 'utf8'), { merge: true, logLevel: 'silent' }).toJS({ maxAliasCount: 1000 })
  } catch {
    return { pidFile: undefined, listen: null }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { pidFile: undefined, listen: raw == null ? DEFAULT_LISTEN : null }
  const map = raw as Record<string, unknown>
  const pid = setting(map, 'pid_file', env, path.dirname(path.resolve(file)))
  const listen = setting(map, 'listen', env, path.dirname(path.resolve(file)))
  let normal: string | null = null
  if (listen === null) normal = DEFAULT_LISTEN
  else if (listen !== false) {
    const r = listenField().safeParse(listen)
    normal = r.success ? (r.data as string) : null
  }
  return { pidFile: pid === false ? null : pid === null || pid === '' ? undefined : pid, listen: normal }
}
