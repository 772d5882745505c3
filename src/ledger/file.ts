// Where the usage ledger lives, decided from the config alone (the workers ask too: no ledger, nothing to sum).
import path from 'node:path'
import type { Config } from '../config/index.js'

/** ledger.file, else leaky-usage.sqlite beside state_file; null: the ledger is off. */
export function ledgerFile(config: Config): string | null {
  const l = config.ledger
  if (!l.enabled) return null
  if (l.file !== undefined) return l.file
  if (config.state_file !== undefined) return path.join(path.dirname(config.state_file), 'leaky-usage.sqlite')
  return null
}
