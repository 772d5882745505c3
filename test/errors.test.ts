// Every error code has a row in README's error table, and every shaped body parses in its provider's shape.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { ABORT_ERRORS, ERRORS, EXIT, START_ERRORS, shapedErrorBody, type ErrorCode } from '../src/errors.js'
import { readdirSync, statSync } from 'node:fs'
import path from 'node:path'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

t.test('README lists every error code with its status', async (t) => {
  for (const [code, e] of Object.entries(ERRORS)) t.match(readme, new RegExp(`\\| ${e.status} \\| \`${code}\` \\|`), code)
})

t.test('provider-shaped bodies', async (t) => {
  const code: ErrorCode = 'LEAKY_RATE_LIMITED'
  t.same(JSON.parse(shapedErrorBody('openai', code, 'm')), { error: { message: 'm', type: 'rate_limit_exceeded', code } })
  t.same(JSON.parse(shapedErrorBody('gemini', code, 'm')).error, { code: 429, message: 'm', status: 'RESOURCE_EXHAUSTED', reason: code })
  t.same(JSON.parse(shapedErrorBody('qwen-native', code, 'm', 'r1')), { code: 'Throttling.RateQuota', message: 'm', request_id: 'r1', leaky_code: code })
})

// src/errors.ts is the one place codes are defined: request errors (ERRORS), start-up, config and CLI failures
// (START_ERRORS, with their exit codes) and the proxy's own abort reasons (ABORT_ERRORS). A code written anywhere
// else in src/ must be one of them (or a prefix of some, as in startsWith), and every exit code comes from EXIT.
t.test('every LEAKY_ code and exit code used in src/ is defined in src/errors.ts', async (t) => {
  const known = [...Object.keys(ERRORS), ...Object.keys(START_ERRORS), ...Object.keys(ABORT_ERRORS)]
  const src = new URL('../src/', import.meta.url).pathname
  const files: string[] = []
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = path.join(d, n)
      if (statSync(p).isDirectory()) walk(p)
      else if (n.endsWith('.ts')) files.push(p)
    }
  }
  walk(src)
  const unknown: string[] = []
  const literalExits: string[] = []
  for (const f of files) {
    if (f.endsWith('/errors.ts')) continue
    const text = readFileSync(f, 'utf8')
    for (const m of text.matchAll(/'(LEAKY_[A-Z0-9_]+)'/g)) {
      if (!known.some((k) => k === m[1] || k.startsWith(m[1] + '_'))) unknown.push(`${path.relative(src, f)}: ${m[1]}`)
    }
    for (const m of text.matchAll(/(?:process\.exit|return exit)\((\d+)\)/g)) literalExits.push(`${path.relative(src, f)}: exit(${m[1]})`)
  }
  t.same(unknown, [], 'codes outside src/errors.ts')
  t.same(literalExits, [], 'exit codes written as numbers instead of EXIT')
  t.equal(EXIT.WORKER_CRASHED, 70)
  for (const [code, e] of Object.entries(START_ERRORS)) t.ok(Number.isInteger(e.exit) && e.exit > 0 && e.message !== '', code)
})
