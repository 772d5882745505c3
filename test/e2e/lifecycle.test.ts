// Process lifecycle: graceful stop with a stream in flight, drain timeout cutting, CLI errors, refusing the uWS
// pure-JS fallback.
import t from 'tap'
import { request } from 'undici'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { startProxy, baseConfig, CLI, ROOT, writeConfig } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'

const { stub, origin } = await startStub({ seed: 5 })
t.teardown(() => stub.close())
const cfg = (drain: string) =>
  baseConfig(`upstreams:
  llm: { provider: openai, targets: ["${origin}"] }
routes:
  - { path: /v1/, upstream: llm }
`).replace('drain_timeout: 5s', `drain_timeout: ${drain}`)
const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 30 })

t.test('SIGTERM lets an in-flight SSE stream finish, then exits 0', async (t) => {
  const proxy = await startProxy(cfg('10s'))
  t.teardown(() => { if (proxy.child.exitCode === null) proxy.child.kill('SIGKILL') })
  const res = await request(proxy.url('/v1/chat/completions'), { method: 'POST', headers: { 'content-type': 'application/json', 'x-stub-tps': '30' }, body })
  t.equal(res.statusCode, 200)
  const reading = res.body.text()
  proxy.child.kill('SIGTERM')
  await proxy.waitLog((l) => l.msg === 'draining')
  const text = await reading
  t.match(text, /data: \[DONE\]/, 'the stream completed')
  t.equal(await proxy.exited, 0)
  const stopped = await proxy.waitLog((l) => l.msg === 'stopped')
  t.equal(stopped.cut, 0)
})

t.test('past drain_timeout the rest is cut, logged, and the exit is still 0', async (t) => {
  const proxy = await startProxy(cfg('300ms'))
  t.teardown(() => { if (proxy.child.exitCode === null) proxy.child.kill('SIGKILL') })
  const res = await request(proxy.url('/v1/chat/completions'), { method: 'POST', headers: { 'content-type': 'application/json', 'x-stub-tps': '2' }, body })
  const reading = res.body.text().catch((e: Error) => `error: ${e.message}`)
  proxy.child.kill('SIGTERM')
  t.equal(await proxy.exited, 0)
  const warn = await proxy.waitLog((l) => l.msg === 'drain timeout: closed requests still in flight')
  t.equal(warn.cut, 1)
  await reading
})

t.test('refuses to start on the uWS pure-JS fallback', async (t) => {
  const file = writeConfig(cfg('1s'))
  // only the 20.30 build has a fallback (and a switch to force it); 20.57, chosen on Node 22/24, throws instead
  const env = { ...process.env, LEAKY_UWS: 'uWebSockets.js', UWS_USE_FALLBACK: '1' }
  const r = spawnSync(process.execPath, [CLI, 'start', '-c', file], { env, encoding: 'utf8', timeout: 60_000 })
  t.not(r.status, 0)
  t.match(r.stderr, /fell back to its pure-JS implementation/)
})

t.test('CLI: unknown flag, missing file, bad config are one-line errors', async (t) => {
  const unknown = spawnSync(process.execPath, [CLI, 'start', '--nope'], { encoding: 'utf8' })
  t.equal(unknown.status, 1)
  t.match(unknown.stderr, /unknown option '--nope'/)
  t.notMatch(unknown.stderr, /at .*\.js:\d+/, 'no stack trace')
  const missing = spawnSync(process.execPath, [CLI, 'validate', '-c', '/nonexistent/leaky.yaml'], { encoding: 'utf8' })
  t.equal(missing.status, 1)
  t.match(missing.stderr, /nonexistent\/leaky\.yaml/)
  t.notMatch(missing.stderr, /at .*\.js:\d+/)
  const bad = spawnSync(process.execPath, [CLI, 'validate', '-c', path.join(ROOT, 'test/fixtures/config/bad.yaml')], { encoding: 'utf8' })
  t.equal(bad.status, 1)
  t.match(bad.stderr, /bad\.yaml:\d+:\d+ \S+: /, 'file:line:col path: message')
  const ok = spawnSync(process.execPath, [CLI, 'validate', '-c', path.join(ROOT, 'config/leaky.yaml')], { encoding: 'utf8' })
  t.equal(ok.status, 0, ok.stderr)
  const version = spawnSync(process.execPath, [CLI, '--version'], { encoding: 'utf8' })
  t.equal(version.status, 0)
  t.match(version.stdout, /^\d+\.\d+\.\d+/)
})
