// The hand-serialised access line is byte for byte what pino writes for the same fields (time aside: two calls
// read the clock twice), through the same logger factory the workers use; and it honours the log level.
import t from 'tap'
import { closeSync, openSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { SCRATCH } from '../helpers/scratch.js'
import { createLogger } from '../../src/observability/logger.js'
import { AccessWriter } from '../../src/observability/access-line.js'

const bindings = { worker: 0, gen: 3, tid: 7 }
const lines = [
  { msg: 'access', req_id: 'r-1', trace_id: null, method: 'POST', path: '/v1/chat/completions', route: '/v1/', upstream: 'openai', status: 200,
    error: null, limit: undefined, key_id: 'team-a', detail: undefined, duration_ms: 1.234, ttfb_ms: 0.5, attempts: undefined,
    models: ['gpt-4o-mini', 'gemini-2.5-flash'], bytes_in: 1024, bytes_out: 700, client_ip: '127.0.0.1', model: 'gpt-4o-mini',
    tokens_estimate: 1200, tokens_prompt: 230, tokens_completion: 9, tokens_total: 239, tokens_source: 'reported', cost_usd: '0.000040' },
  // escapes, non-ASCII, a lone surrogate, control characters, non-finite numbers, an empty object
  { msg: 'access', path: '/a"b\\c\n\t\u0001é漢😀\ud800', status: 429, detail: 'x'.repeat(100) + '"', duration_ms: NaN, ttfb_ms: Infinity,
    models: [], extra: { a: [1, 'two', null] }, flag: true },
  {},
]

const ISO_TIME = /"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/

function capture(write: (logger: ReturnType<typeof createLogger>['logger']) => void, name: string): string[] {
  const file = path.join(SCRATCH, name)
  const fd = openSync(file, 'w')
  // sync: every line is on disk when write returns (the workers' buffered destination writes the same bytes later)
  const { logger } = createLogger({ level: 'info', bindings, fd, sync: true })
  write(logger)
  closeSync(fd)
  const out = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')
  for (const l of out) if (!ISO_TIME.test(l)) throw new Error(`no ISO time in ${l}`)
  return out.map((l) => l.replace(/"time":"[^"]*"/, '"time":"T"'))
}

t.test('same bytes as pino', async (t) => {
  const viaPino = capture((logger) => { for (const l of lines) logger.info(l) }, 'pino.log')
  const viaWriter = capture((logger) => {
    const w = new AccessWriter(logger)
    for (const l of lines) w.write(l)
  }, 'writer.log')
  t.equal(viaWriter.length, lines.length)
  t.strictSame(viaWriter, viaPino)
  t.match(viaWriter[0], /^\{"level":"info","time":"T","worker":0,"gen":3,"tid":7,"msg":"access","req_id":"r-1","trace_id":null,/)
})

t.test('nothing below the logger level', async (t) => {
  const file = path.join(SCRATCH, 'warn.log')
  const fd = openSync(file, 'w')
  const { logger } = createLogger({ level: 'warn', bindings, fd, sync: true })
  new AccessWriter(logger).write(lines[0])
  logger.level = 'info'
  new AccessWriter(logger).write({ msg: 'access', status: 204 })
  closeSync(fd)
  const out = readFileSync(file, 'utf8').trim().split('\n')
  t.equal(out.length, 1, 'only the line written at level info')
  t.match(JSON.parse(out[0]), { level: 'info', msg: 'access', status: 204 })
})
