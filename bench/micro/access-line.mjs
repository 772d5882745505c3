// Issue 16, mean "access line by a pre-built writer": CPU per access line, pino's generic path (logger.info) vs
// AccessWriter (src/observability/access-line.ts), same logger (createLogger, as a worker makes it), same fields,
// written to /dev/null; interleaved rounds in one process. Build first (npm run build).
//   node bench/micro/access-line.mjs           (~6 s; ROUNDS=5 LINES=200000)
import { openSync } from 'node:fs'
import os from 'node:os'
import { createLogger } from '../../dist/observability/logger.js'
import { AccessWriter } from '../../dist/observability/access-line.js'
import { writeResults } from '../record.mjs'

const ROUNDS = Number(process.env.ROUNDS ?? 5)
const LINES = Number(process.env.LINES ?? 200_000)
const { logger, flush } = createLogger({ level: 'info', bindings: { worker: 0, gen: 1, tid: 1 }, fd: openSync('/dev/null', 'w') })
const writer = new AccessWriter(logger)
// the fields account.ts writes for the saturated rig's chat request
const line = (i) => ({
  msg: 'access', req_id: `req-${i}`, trace_id: null, method: 'POST', path: '/v1/chat/completions', route: '/v1/', upstream: 'openai',
  status: 200, error: null, limit: undefined, key_id: 'team-a', detail: undefined, duration_ms: 0.412, ttfb_ms: 0.388, attempts: undefined,
  models: undefined, bytes_in: 1024, bytes_out: 367, client_ip: '127.0.0.1', model: 'gpt-4o-mini-2024-07-18', tokens_estimate: 209,
  tokens_prompt: 230, tokens_completion: 9, tokens_total: 239, tokens_cached: undefined, tokens_cache_write: undefined,
  tokens_thoughts: undefined, tokens_tool_prompt: undefined, tokens_source: 'reported', cost_usd: undefined, cluster: undefined,
  cache: undefined, tokens_charged: undefined,
})
const cases = { pino: (o) => logger.info(o), writer: (o) => writer.write(o) }
const us = { pino: [], writer: [] }
for (const f of Object.values(cases)) for (let i = 0; i < 20000; i++) f(line(i))
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, f] of r % 2 === 0 ? Object.entries(cases) : Object.entries(cases).reverse()) {
    const c0 = process.cpuUsage()
    for (let i = 0; i < LINES; i++) f(line(i))
    flush()
    const c = process.cpuUsage(c0)
    us[name].push(+((c.user + c.system) / LINES).toFixed(3))
  }
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const result = { pino_us: med(us.pino), writer_us: med(us.writer), ratio: +(med(us.writer) / med(us.pino)).toFixed(3), rounds: us }
console.log(`CPU per access line (median of ${ROUNDS}): pino ${result.pino_us} µs, writer ${result.writer_us} µs = ${result.ratio}×`)
writeResults('access-line.json', { date: new Date().toISOString(), command: 'node bench/micro/access-line.mjs', node: process.version,
  loadavg: os.loadavg(), lines: LINES, result })
