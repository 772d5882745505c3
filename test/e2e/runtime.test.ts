// The uWS build a real proxy runs on, as its user sees it: `leaky --version`, the start-up log line, /status.json and
// leaky_build_info name the same choice (20.30 on Node 20, 20.57 on Node 22/24); a build that cannot load on this
// runtime refuses the start with Node, ABI, glibc and the working pairs, while `leaky validate` (no uWS) still works;
// heads past server.max_header get a 431 under either build.
import t from 'tap'
import { request } from 'undici'
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { startProxy, baseConfig, CLI, writeConfig, scrapeMetrics } from '../helpers/proxy.js'
import { rawExchange } from '../helpers/raw.js'
import { currentRuntime } from '../../src/server/uws-choice.js'
import { SCRATCH_RUN } from '../helpers/scratch.js'

const rt = currentRuntime()
const UWS = rt.abi === '115' ? '20.30.0' : '20.57.0'
const PKG = rt.abi === '115' ? 'uWebSockets.js' : '@btc-vision/uwebsockets.js'
const GLIBC = rt.glibc ?? 'none'
const env = { ...process.env, LEAKY_UWS: '' }

const config = baseConfig(`server: { max_header: 8kb }
upstreams:
  u: { targets: [embedded] }
routes:
  - { path: /, upstream: u }
`)

t.test('leaky --version names the build chosen for this Node', async (t) => {
  const r = spawnSync(process.execPath, [CLI, '--version'], { env, encoding: 'utf8' })
  t.equal(r.status, 0)
  t.match(r.stdout, new RegExp(`^\\d+\\.\\d+\\.\\d+ \\(uws ${UWS.replaceAll('.', '\\.')}, node ${rt.node.replaceAll('.', '\\.')}, glibc ${GLIBC.replaceAll('.', '\\.')}\\)\\n$`))
})

t.test('a running proxy logs its build and shows it in /status.json and leaky_build_info', async (t) => {
  const proxy = await startProxy(config, { env })
  t.teardown(() => proxy.stop())
  const line = await proxy.waitLog((l) => typeof l.msg === 'string' && l.msg.startsWith('uws '))
  t.equal(line.msg, `uws ${UWS}, node ${rt.node}, glibc ${GLIBC}`)
  t.match(line, { uws: UWS, uws_package: PKG, uws_forced: false, abi: rt.abi, uws_head_limit: 16384 })

  const status = (await (await request(`http://127.0.0.1:${proxy.adminPort}/status.json`)).body.json()) as { build: Record<string, string> }
  t.match(status.build, { uws: UWS, uws_package: PKG, node: process.version, glibc: GLIBC })

  const metrics = await scrapeMetrics(proxy)
  const build = metrics.split('\n').find((l) => l.startsWith('leaky_build_info{'))
  t.match(build, `uws="${UWS}"`)
  t.match(build, `uws_package="${PKG}"`)
  t.match(build, `glibc="${GLIBC}"`)

  // just over max_header: the proxy's own JSON 431; past uWS's limit (2 x max_header here): still a 431, from
  // uWS 20.57 itself, or on 20.30 from the proxy (it parses a head that arrives in one read)
  const pad = (n: number) => `GET /__stub/echo HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(n)}\r\n\r\n`
  const near = await rawExchange(proxy.port, pad(9 * 1024))
  t.match(near.data, /^HTTP\/1\.1 431 /)
  t.match(near.data, /LEAKY_HEADERS_TOO_LARGE/)
  const far = await rawExchange(proxy.port, pad(24 * 1024))
  t.match(far.data, /^HTTP\/1\.1 431 /)
  const ok = await request(proxy.url('/__stub/echo'), { headers: { 'x-pad': 'p'.repeat(7 * 1024) } })
  t.equal(ok.statusCode, 200, 'a head under max_header is served')
  await ok.body.dump()
})

t.test('a build that cannot load here: the start is refused with the matrix, validate still works', async (t) => {
  // glibc < 2.38 cannot load 20.57; Node 22/24 have no 20.30 binary (it would fall back to pure JS: refused too)
  const old = rt.glibc !== null && /^2\.(\d|[12]\d|3[0-7])$/.test(rt.glibc)
  const cannot = old ? '@btc-vision/uwebsockets.js' : rt.abi !== '115' ? 'uWebSockets.js' : 'no-such-uws'
  const file = writeConfig(config)
  const bad = { ...process.env, LEAKY_UWS: cannot }
  const before = existsSync(SCRATCH_RUN) ? readdirSync(SCRATCH_RUN).length : 0
  const r = spawnSync(process.execPath, [CLI, 'start', '-c', file], { env: bad, encoding: 'utf8', timeout: 30_000 })
  t.equal(r.status, 1)
  t.match(r.stderr, `Node ${rt.node} (ABI ${rt.abi})`)
  t.match(r.stderr, `glibc ${GLIBC}`)
  t.match(r.stderr, /Working pairs: Node 20 \(ABI 115\) with glibc >= 2\.27 → uWS 20\.30\.0 \(uWebSockets\.js\); Node 22\/24 \(ABI 127\/137\) with glibc >= 2\.38 → uWS 20\.57\.0/)
  t.notMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace')
  t.equal(existsSync(SCRATCH_RUN) ? readdirSync(SCRATCH_RUN).length : 0, before, 'no pid file or socket left behind')

  const v = spawnSync(process.execPath, [CLI, 'validate', '-c', file], { env: bad, encoding: 'utf8' })
  t.equal(v.status, 0, v.stderr)
  t.match(v.stdout, /: ok\n$/)
})
