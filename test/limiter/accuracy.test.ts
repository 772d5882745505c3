// Real worker threads on one shared table (fixture: test/fixtures/limiter/hammer.mjs, which loads dist/: build
// first with npx tsc -p tsconfig.build.json).
import t from 'tap'
import type { LimitDef } from '../../src/limiter/limit.js'
import { BucketTable } from '../../src/limiter/table.js'
import { hammer } from '../fixtures/limiter/threads.js'

const S = 1_000_000_000n
const NOW = 1_780_000_000n * S
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)
const r200: LimitDef = { name: 'r200', per: 'key', unit: 'requests', amount: 200, period_ms: 1000, burst: 20 }

t.test('accuracy, virtual clock: 3 threads on one 200/s burst-20 bucket for 2 s admit 200*2 + 20', async (t) => {
  const table = BucketTable.create(1024)
  // 200k attempts 10 µs apart = 2 s of virtual time, every thread advancing the same clock
  const rs = await hammer(table, { mode: 'virtual', limit: r200, base: String(NOW), stepNs: 10_000, ticks: 200_000 })
  const ok = sum(rs.map((r) => r.ok as number))
  const want = 200 * 2 + 20
  t.ok(Math.abs(ok - want) <= want * 0.01, `admitted ${ok}, want ${want} ± 1%`)
  t.ok(rs.every((r) => (r.ok as number) > 0), `every thread got some: ${rs.map((r) => r.ok).join(' ')}`)
})

t.test('accuracy, real clock: 3 threads for 2 s admit 200/s * elapsed + 20 within 1%', async (t) => {
  const table = BucketTable.create(1024)
  const rs = await hammer(table, { mode: 'real', limit: r200 }, 2n * S)
  const ok = sum(rs.map((r) => r.ok as number))
  const first = rs.map((r) => BigInt(r.first as string)).reduce((a, b) => (a < b ? a : b))
  const last = rs.map((r) => BigInt(r.last as string)).reduce((a, b) => (a > b ? a : b))
  const elapsed = Number(last - first) / 1e9
  const want = 200 * elapsed + 20
  t.ok(elapsed > 1.8, `ran ${elapsed.toFixed(3)} s`)
  t.ok(Math.abs(ok - want) <= want * 0.01, `admitted ${ok} in ${elapsed.toFixed(3)} s, want ${want.toFixed(1)} ± 1% (${rs.map((r) => r.attempts).join('+')} attempts)`)
})

