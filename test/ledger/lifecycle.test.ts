// The usage ledger across a generation's life, through the master: an upgrade's old generation writes its rows
// when it drains (the flush interval, 1 h, never came), so the file holds every request of both generations; after a
// reload to a short interval the periodic flush writes without a stop, so a kill -9 of the generation loses nothing
// written before it, and the replacement generation opens the same file and goes on adding to it.
import t from 'tap'
import path from 'node:path'
import Database from 'better-sqlite3'
import { Agent, request } from 'undici'
import { masterConfig, startMaster } from '../fixtures/supervisor/master.js'
import { startStub } from '../helpers/stub.js'
import { metricValue, type LogLine } from '../helpers/proxy.js'

const { stub, origin } = await startStub({ seed: 5 })
let ledger = ''
const extra = (flush: string) => `ledger: { file: ${ledger}, flush: ${flush} }
keys:
  - { id: team-a, key: "team-a-secret", org: acme }
upstreams:
  llm: { provider: openai, targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: llm, auth: key }
`
const m = await startMaster((dir) => {
  ledger = path.join(dir, 'usage.sqlite')
  return extra('1h')
})
const agent = new Agent({ pipelining: 0, connections: 1, keepAliveTimeout: 1 })
t.teardown(async () => {
  await agent.close()
  await m.proxy.stop()
  await stub.close()
})

async function chat(i: number): Promise<LogLine> {
  const r = await request(m.proxy.url('/v1/chat/completions'), {
    method: 'POST', dispatcher: agent,
    headers: { 'content-type': 'application/json', authorization: 'Bearer team-a-secret' },
    body: JSON.stringify({ model: 'gpt-4o-mini', stream: i % 2 === 1, max_tokens: 20, messages: [{ role: 'user', content: `request ${i}` }] }),
  })
  await r.body.text()
  t.equal(r.statusCode, 200)
  const id = r.headers['x-request-id'] as string
  return m.waitLog((l) => l.msg === 'access' && l.req_id === id)
}

function inFile(): { requests: number; tokens: number; micro: number } {
  const db = new Database(ledger, { readonly: true })
  try {
    const r = db.prepare('SELECT coalesce(sum(requests), 0) AS requests, coalesce(sum(tokens_total), 0) AS tokens, coalesce(sum(cost_micro), 0) AS micro FROM usage_minute').get() as { requests: number; tokens: number; micro: number }
    return r
  } finally {
    db.close()
  }
}

function summed(lines: LogLine[]): { requests: number; tokens: number; micro: number } {
  return {
    requests: lines.length,
    tokens: lines.reduce((a, l) => a + (l.tokens_total as number), 0),
    micro: lines.reduce((a, l) => a + Math.round(Number(l.cost_usd) * 1e6), 0),
  }
}

const lines: LogLine[] = []

t.test('upgrade: the draining generation writes its rows; nothing of either generation is lost', async (t) => {
  for (let i = 0; i < 6; i++) lines.push(await chat(i))
  t.same(inFile(), { requests: 0, tokens: 0, micro: 0 }, 'nothing written yet: the interval is 1 h')
  const up = await m.cli('upgrade')
  t.equal(up.code, 0, up.stderr)
  for (let i = 6; i < 10; i++) lines.push(await chat(i))
  await m.waitLog((l) => l.msg === 'previous generation drained and exited')
  t.same(new Set(lines.map((l) => l.gen)), new Set([1, 2]), 'both generations served')
  t.same(inFile(), summed(lines.filter((l) => l.gen === 1)), 'generation 1\'s rows, written when it drained')
})

t.test('periodic flush: a kill -9 of the generation keeps what was written; the next one adds to the same file', async (t) => {
  m.rewrite(masterConfig(m.dir, extra('200ms')))
  const re = await m.cli('reload')
  t.equal(re.code, 0, re.stderr)
  for (let i = 10; i < 14; i++) lines.push(await chat(i))
  // the worker hands its rows over within 1 s, the writer flushes every 200 ms: poll the file, nothing to await
  for (let i = 0; i < 100 && inFile().requests < lines.length; i++) await new Promise((r) => setTimeout(r, 100))
  t.same(inFile(), summed(lines), 'every request so far is in the file, without a stop')
  const pid = await m.genPid()
  process.kill(pid, 'SIGKILL')
  const restarted = await m.waitLog((l) => l.msg === 'generation restarted' && l.pid !== pid, 60_000)
  t.same(inFile(), summed(lines), 'intact after the kill')
  lines.push(await chat(14))
  const metrics = await (await request(`http://127.0.0.1:${restarted.admin_port as number}/metrics`)).body.text()
  t.equal(metricValue(metrics, 'leaky_ledger_enabled'), 1, 'the replacement generation opened the same file')
  for (let i = 0; i < 100 && inFile().requests < lines.length; i++) await new Promise((r) => setTimeout(r, 100))
  t.same(inFile(), summed(lines))
})
