// Where a bench run's JSON goes. bench/results/ is the committed record the READMEs quote, so only a run asked to
// be recorded writes there (RECORD=1); any other run writes to <os tmpdir>/leaky-bench/, so benching leaves the
// working tree clean. RESULTS=DIR writes to DIR instead, RESULTS=none writes nothing. Every bench script writes
// through writeResults() and prints the path it wrote.
import { mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The committed results directory. */
export const RECORDED = fileURLToPath(new URL('./results', import.meta.url))

/** true when this run's results go into bench/results/ */
export const recording = process.env.RECORD === '1'

/** The directory this run writes to, or null for RESULTS=none. */
export function resultsDir() {
  const r = process.env.RESULTS
  if (r === 'none') return null
  if (r !== undefined && r !== '') return r
  return recording ? RECORDED : join(tmpdir(), 'leaky-bench')
}

/** Write `data` as `name` (pretty JSON) where this run's results go; prints and returns the path (null: not written). */
export function writeResults(name, data) {
  const dir = resultsDir()
  if (dir === null) return null
  mkdirSync(dir, { recursive: true })
  const file = join(dir, name)
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n')
  process.stdout.write(`results: ${file}${recording ? '' : ' (not recorded: RECORD=1 writes bench/results/)'}\n`)
  return file
}
