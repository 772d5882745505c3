// `watch: true` (or `leaky start --watch`): saving the config file reloads it (debounced, the way an editor saves:
// write a temp file, rename it over), with the same rules as SIGHUP: a valid file applies in place, an invalid one
// is refused and the old config keeps serving; a reload that sets `watch: false` stops watching.
import t from 'tap'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { request } from 'undici'
import { startMaster } from '../fixtures/supervisor/master.js'

const m = await startMaster(`watch: true
upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub }
`)
t.teardown(() => m.proxy.stop())
const original = readFileSync(m.configFile, 'utf8')

function save(text: string): void {
  const tmp = `${m.configFile}.swp`
  writeFileSync(tmp, text)
  renameSync(tmp, m.configFile)
}

async function status(p: string): Promise<number> {
  const r = await request(m.proxy.url(p))
  await r.body.text()
  return r.statusCode
}

t.test('a saved valid change is applied once', async (t) => {
  t.equal(await status('/v2/v1/models'), 404)
  save(original.replace('routes:\n', 'routes:\n  - { path: /v2/, upstream: stub, strip_prefix: true }\n'))
  const line = await m.waitLog((l) => l.msg === 'reloaded' && l.source === 'watch')
  t.same(line.applied, ['routes'])
  t.equal(await status('/v2/v1/models'), 200)
  t.equal(m.proxy.lines.filter((l) => l.msg === 'reloaded').length, 1, 'one reload for one save')
})

t.test('a saved invalid change is refused; the old config keeps serving', async (t) => {
  save(original.replace('upstream: stub }', 'upstream: stbu }'))
  const line = await m.waitLog((l) => l.msg === 'reload failed: config invalid, old config stays in force' && l.source === 'watch')
  t.match((line.errors as string[])[0], /leaky\.yaml:\d+:\d+ routes\[0\]\.upstream/)
  t.equal(await status('/v2/v1/models'), 200)
})

t.test('a reload that sets watch: false stops watching', async (t) => {
  save(original.replace('watch: true', 'watch: false'))
  await m.waitLog((l) => l.msg === 'reloaded' && l.source === 'watch' && (l.applied as string[]).includes('watch'))
  save(original.replace('watch: true', 'watch: false').replace('routes:\n', 'routes:\n  - { path: /v3/, upstream: stub, strip_prefix: true }\n'))
  // nothing may happen now: a SIGHUP is the next reload, and it must be the one that brings /v3/
  const before = m.proxy.lines.filter((l) => l.msg === 'reloaded').length
  process.kill(m.pid, 'SIGHUP')
  const line = await m.waitLog((l) => l.msg === 'reloaded' && l.source === 'SIGHUP')
  t.same(line.applied, ['routes'])
  t.equal(m.proxy.lines.filter((l) => l.msg === 'reloaded').length, before + 1, 'the save itself did not reload')
  t.equal(await status('/v3/v1/models'), 200)
})
