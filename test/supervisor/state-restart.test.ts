// state_file across restarts: a stopped proxy writes its buckets, the next start reads them, so a daily token
// budget keeps its level (less what drained while it was down); a corrupt file is moved aside with a warning and
// the proxy starts with empty buckets instead of failing.
import t from 'tap'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { startMaster, restartMaster } from '../fixtures/supervisor/master.js'

const BUDGET = 1_000_000
const extra = (dir: string) => `state_file: ${path.join(dir, 'buckets.snap')}
limits:
  daily: { per: ip, tokens: ${BUDGET / 1000}k/day }
upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub, limits: [daily] }
`

/** One chat completion: the budget left after its estimate was charged, and the tokens it really used. */
async function chat(base: string): Promise<{ remaining: number; used: number }> {
  const r = await request(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'write a lot' }], max_tokens: 1000 }),
  })
  const body = (await r.body.json()) as { usage: { total_tokens: number } }
  t.equal(r.statusCode, 200)
  return { remaining: Number(r.headers['x-ratelimit-remaining-tokens']), used: body.usage.total_tokens }
}

t.test('stop, start: the daily token bucket keeps its level, less the drain', async (t) => {
  const m = await startMaster(extra)
  let last = { remaining: 0, used: 0 }
  for (let i = 0; i < 10; i++) last = await chat(m.proxy.url(''))
  t.ok(last.remaining < BUDGET - 10_000, `about 10k tokens spent (${BUDGET - last.remaining})`)
  const stoppedAt = Date.now()
  t.equal(await m.proxy.stop(), 0)
  t.ok(existsSync(path.join(m.dir, 'buckets.snap')), 'written at stop')

  const again = await restartMaster(m.dir)
  t.teardown(() => again.proxy.stop())
  const restored = await again.waitLog((l) => l.msg === 'buckets restored')
  t.equal(restored.source, 'state file')
  t.equal(restored.restored, 1)
  const next = await chat(again.proxy.url(''))
  // the same request again: its estimate is charged as before; what changed is the previous request's real
  // usage (reconciled after its answer) and the drain while we were down (1M/day = 11.6 tokens a second)
  const drained = ((Date.now() - stoppedAt) / 1000) * (BUDGET / 86_400)
  const want = last.remaining - last.used + drained
  t.ok(Math.abs(next.remaining - want) <= 50 + drained, `level carried over: ${next.remaining} left, expected ~${Math.round(want)}`)
})

t.test('a corrupt state file: moved aside with a warning, empty buckets, serving', async (t) => {
  const m = await startMaster(extra)
  const first = await chat(m.proxy.url(''))
  t.equal(await m.proxy.stop(), 0)
  writeFileSync(path.join(m.dir, 'buckets.snap'), 'LEAKYBKT but then nothing that makes sense; a torn write, a disk error')

  const again = await restartMaster(m.dir)
  t.teardown(() => again.proxy.stop())
  const warn = await again.waitLog((l) => l.msg === 'state file unusable, moved aside; starting with empty buckets')
  t.equal(warn.level, 'warn')
  t.match(warn.reason, /bad magic|truncated|checksum|version/)
  t.ok(readdirSync(m.dir).some((f) => f.startsWith('buckets.snap.bad-')), 'kept beside it as buckets.snap.bad-…')
  const next = await chat(again.proxy.url(''))
  t.equal(next.remaining, first.remaining, 'empty buckets: the same request leaves the same budget as the very first one')
})
