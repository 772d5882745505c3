// Every error code has a row in README's error table, and every shaped body parses in its provider's shape.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { ERRORS, shapedErrorBody, type ErrorCode } from '../src/errors.js'

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
