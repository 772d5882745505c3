// `leaky reload -c FILE` of an invalid file prints its errors (file:line:col, as `leaky validate`) and exits 1, and
// `leaky status -c FILE` finds the master, whichever way FILE leads to it (issue #13.2): its pid_file; its listen
// address (the default pid file name); or, when this shell cannot resolve the listen (an ${env:…} the service has
// and the admin's shell has not), the running master whose config file it is. Locating never waits for the file to
// validate in the admin's shell.
import t, { type Test } from 'tap'
import { scratchDir } from '../helpers/scratch.js'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { freePort, startOnFreePort, startProxy, type Proxy } from '../helpers/proxy.js'
import { runCli } from '../fixtures/supervisor/master.js'

const body = (listen: string, extra = '') => `listen: ${listen}
workers: 1
drain_timeout: 5s
admin: { listen: 127.0.0.1:0 }
log: { level: info }
${extra}upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub }
`
// the same config with a route naming an upstream that does not exist
const broken = (yaml: string) => yaml.replace('upstream: stub }', 'upstream: stubb }')

const started: Proxy[] = []
t.teardown(() => Promise.all(started.map((p) => p.stop())))

async function setup(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<{ file: string; proxy: Proxy }> {
  const file = path.join(scratchDir('cfg-'), 'leaky.yaml')
  writeFileSync(file, yaml)
  const proxy = await startProxy(file, { env })
  started.push(proxy)
  return { file, proxy }
}

/** The error lines `leaky validate` prints for a file (without its closing summary line). */
async function validateErrors(t: Test, file: string): Promise<string[]> {
  const v = await runCli(['validate', '-c', file])
  t.equal(v.code, 1, 'validate rejects it too')
  return v.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('leaky: '))
}

function checkRejected(t: Test, r: { code: number | null; stderr: string }, errors: string[]): void {
  t.equal(r.code, 1)
  t.notMatch(r.stderr, /no running master/)
  t.same(r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('leaky: ')), errors, 'the errors, as validate prints them')
  t.match(r.stderr, /leaky: reload failed; the running config stays in force\n$/)
}

t.test('a config with pid_file', async (t) => {
  const dir = scratchDir('pid-')
  const { file } = await setup(body('127.0.0.1:0', `pid_file: ${path.join(dir, 'my.pid')}\n`))
  const good = await runCli(['reload', '-c', file])
  t.equal(good.code, 0, good.stderr)
  writeFileSync(file, broken(body('127.0.0.1:0', `pid_file: ${path.join(dir, 'my.pid')}\n`)))
  const errors = await validateErrors(t, file)
  t.match(errors, [/leaky\.yaml:\d+:\d+ routes\[0\]\.upstream: unknown upstream "stubb"/])
  checkRejected(t, await runCli(['reload', '-c', file]), errors)
  const st = await runCli(['status', '-c', file])
  t.equal(st.code, 0, `status -c of an invalid file: ${st.stderr}`)
  t.match(st.stdout, /reloads: 1 ok, 1 failed/)
})

/** Like setup, for a config that needs a fixed port. */
async function setupFixed(yaml: (port: number) => string, env: NodeJS.ProcessEnv = {}): Promise<{ file: string; proxy: Proxy; port: number }> {
  const file = path.join(scratchDir('cfg-'), 'leaky.yaml')
  const r = await startOnFreePort((port) => {
    writeFileSync(file, yaml(port))
    return file
  }, { env })
  started.push(r.proxy)
  return r
}

t.test('a config whose listen gives the pid file name', async (t) => {
  const { file, port } = await setupFixed((port) => body(`127.0.0.1:${port}`))
  writeFileSync(file, broken(body(`127.0.0.1:${port}`)))
  checkRejected(t, await runCli(['reload', '-c', file]), await validateErrors(t, file))
})

t.test('a config with an ${env:…} the admin\'s shell lacks: found; reloaded by the master; its errors printed', async (t) => {
  t.equal(process.env.LEAKY_T_PORT, undefined, 'not set in the shell the CLI runs in')
  const yaml = body('"127.0.0.1:${env:LEAKY_T_PORT}"', 'stub: { seed: "${env:LEAKY_T_SEED}" }\n')
  // the port reaches the master through its environment only (no retry on a port taken meanwhile, unlike setupFixed)
  const port = await freePort()
  const { file, proxy } = await setup(yaml, { LEAKY_T_PORT: String(port), LEAKY_T_SEED: '3' })
  t.equal(proxy.port, port)
  const st = await runCli(['status', '-c', file])
  t.equal(st.code, 0, st.stderr)
  t.match(st.stdout, new RegExp(`master pid ${proxy.child.pid} `))
  const good = await runCli(['reload', '-c', file])
  t.equal(good.code, 0, `valid where it matters, in the master: ${good.stderr}`)
  // now also unset where the master runs: the master's errors, with line and column
  writeFileSync(file, yaml.replace('level: info', 'level: "${env:LEAKY_T_NEVER_SET}"'))
  const r = await runCli(['reload', '-c', file])
  checkRejected(t, r, [`${file}:5:15 log.level: environment variable LEAKY_T_NEVER_SET is not set (give a default with \${env:LEAKY_T_NEVER_SET:-value})`])
})

t.test('no master for the file: its errors as this shell sees them, then that no master was found', async (t) => {
  const file = path.join(scratchDir('cfg-'), 'nobody.yaml')
  writeFileSync(file, broken(body(`127.0.0.1:${await freePort()}`)))
  const r = await runCli(['reload', '-c', file])
  t.equal(r.code, 1)
  t.match(r.stderr, /nobody\.yaml:\d+:\d+ routes\[0\]\.upstream: unknown upstream "stubb".*\nleaky: no running master for .*nobody\.yaml \(listen 127\.0\.0\.1:\d+\)/s)
})
