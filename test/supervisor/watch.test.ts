// `leaky start --watch`: saving the config file reloads it (debounced, the way an editor saves: write a temp file,
// rename it over), with the same rules as SIGHUP: a valid file applies in place, an invalid one is refused and the
// old config keeps serving.
import t from 'tap'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { request } from 'undici'
import { startMaster } from '../fixtures/supervisor/master.js'

const m = await startMaster(`upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub }
`, {}, ['--watch'])
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
