// Which uWS build a runtime gets (src/server/uws-choice.ts) and the real load of it (src/server/uws.ts): the choice
// for runtimes this machine is not (Node 18/22/24/26, musl, an old glibc) from synthetic runtimes against the
// packages really installed; the load for this one, and for a build that cannot load here. The host run covers Node
// 20 (20.30), .ci/node24.sh covers Node 24 (20.57).
import t from 'tap'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { chooseUws, currentRuntime, describeChoice, packageDir, refusal, workingPairs, type Runtime } from '../../src/server/uws-choice.js'
import { loadUws } from '../../src/server/uws.js'
import { LeakyError } from '../../src/errors.js'
import { uwsHeadLimit, applyUwsHeadLimit } from '../../src/server/head-limit.js'

const OLD = '@trufflesuite/uws-js-unofficial'
const NEW = '@btc-vision/uwebsockets.js'
const rt = (abi: string, node: string, glibc: string | null = '2.41'): Runtime => ({ node, abi, platform: 'linux', arch: 'x64', glibc })

t.test('each package folder is found by name, whatever its layout, with its version', async (t) => {
  const old = packageDir('uWebSockets.js')!
  const neu = packageDir(NEW)!
  t.ok(old && neu, 'both builds are installed')
  t.equal((JSON.parse(readFileSync(path.join(old, 'package.json'), 'utf8')) as { name: string }).name, OLD)
  t.equal((JSON.parse(readFileSync(path.join(neu, 'package.json'), 'utf8')) as { name: string }).name, NEW)
  t.equal(packageDir('no-such-uws-package'), null)
})

t.test('chosen by Node ABI: Node 20 keeps 20.30 on every glibc, Node 22/24 get 20.57', async (t) => {
  const cases: Array<[Runtime, string, string]> = [
    [rt('115', '20.20.2', '2.36'), 'uWebSockets.js', '20.30.0'],
    [rt('115', '20.20.2', '2.41'), 'uWebSockets.js', '20.30.0'],
    [rt('127', '22.23.5'), NEW, '20.57.0'],
    [rt('137', '24.22.3'), NEW, '20.57.0'],
  ]
  for (const [r, pkg, version] of cases) {
    const c = chooseUws({}, r)
    t.equal(c.build?.pkg, pkg, `ABI ${r.abi}, glibc ${r.glibc}`)
    t.equal(c.version, version)
    t.equal(c.problem, null)
    t.equal(c.forced, false)
  }
  t.equal(describeChoice(chooseUws({}, rt('137', '24.22.3'))), 'uws 20.57.0, node 24.22.3, glibc 2.41')
})

t.test('a runtime no build serves is refused with Node, ABI, glibc and the working pairs', async (t) => {
  const cases: Array<[Runtime, RegExp]> = [
    [rt('147', '26.0.0'), /no uWebSockets\.js build is chosen for Node 26\.0\.0 \(ABI 147\)/],
    [rt('108', '18.20.4'), /no uWebSockets\.js build is chosen for Node 18\.20\.4 \(ABI 108\)/],
    [rt('137', '24.22.3', '2.36'), /needs glibc >= 2\.38, this system has 2\.36/],
    [rt('137', '24.22.3', null), /needs glibc; this system has none \(musl\?\)/],
  ]
  for (const [r, why] of cases) {
    const c = chooseUws({}, r)
    t.match(c.problem, why)
    const text = refusal(c)
    t.match(text, `Node ${r.node} (ABI ${r.abi})`)
    t.match(text, `glibc ${r.glibc ?? 'none'}`)
    t.match(text, /Working pairs: Node 20 \(ABI 115\) with glibc >= 2\.27 → uWS 20\.30\.0 \(uWebSockets\.js\); Node 22\/24 \(ABI 127\/137\) with glibc >= 2\.38 → uWS 20\.57\.0/)
  }
  t.equal(workingPairs().split('; ').length, 2)
})

t.test('LEAKY_UWS forces a build by its installed or its registry name; an unknown name is refused', async (t) => {
  const forced = chooseUws({ LEAKY_UWS: NEW }, rt('115', '20.20.2', '2.41'))
  t.equal(forced.build?.pkg, NEW)
  t.equal(forced.forced, true)
  t.equal(forced.problem, null, 'Node 20 on a new glibc can run 20.57 when asked')
  t.match(refusal(forced, 'x'), /forced by LEAKY_UWS/)
  t.equal(chooseUws({ LEAKY_UWS: OLD }, rt('137', '24.22.3')).build?.pkg, 'uWebSockets.js')
  t.match(chooseUws({ LEAKY_UWS: 'uws' }, rt('115', '20.20.2')).problem, /LEAKY_UWS=uws names no known build \(known: uWebSockets\.js, @btc-vision\/uwebsockets\.js\)/)
  t.equal(chooseUws({ LEAKY_UWS: '' }, rt('115', '20.20.2')).forced, false, 'empty means unset')
})

t.test('this runtime: the chosen build loads natively', async (t) => {
  const c = chooseUws({})
  t.equal(c.problem, null, describeChoice(c))
  t.equal(c.build?.pkg, process.versions.modules === '115' ? 'uWebSockets.js' : NEW)
  const uws = loadUws(c)
  t.type(uws.App, 'function')
  t.type(uws.us_listen_socket_close, 'function')
})

t.test('a build that cannot load here is refused with the dynamic linker\'s reason, never run on a fallback', async (t) => {
  const here = currentRuntime()
  // the other build: on glibc < 2.38 the new one cannot load; on Node 22/24 the old one has no binary
  const other = here.glibc !== null && /^2\.(\d|[12]\d|3[0-7])$/.test(here.glibc) ? NEW : here.abi !== '115' ? 'uWebSockets.js' : null
  if (other === null) return t.skip('both builds load on this runtime')
  // skip the pre-load check to reach the real load
  const c = { ...chooseUws({ LEAKY_UWS: other }), problem: null }
  let err: unknown
  try {
    loadUws(c)
  } catch (e) {
    err = e
  }
  t.type(err, LeakyError)
  const e = err as LeakyError
  if (other === NEW) {
    t.equal(e.code, 'LEAKY_UWS_UNAVAILABLE')
    t.match(e.message, /GLIBC_2\.38' not found/)
  } else {
    t.equal(e.code, 'LEAKY_UWS_FALLBACK')
    t.match(e.message, /fell back to its pure-JS implementation/)
  }
  t.match(e.message, `Node ${here.node} (ABI ${here.abi})`)
  t.match(e.message, `glibc ${here.glibc}`)
  t.match(e.message, /Working pairs: /)
})

t.test('head limit: room above server.max_header for the proxy\'s own JSON 431', async (t) => {
  t.equal(uwsHeadLimit(16 * 1024), 32 * 1024)
  t.equal(uwsHeadLimit(1024), 5120, 'at least 4 KB above')
  const env: NodeJS.ProcessEnv = {}
  t.equal(applyUwsHeadLimit(8192, env), 16384)
  t.equal(env.UWS_HTTP_MAX_HEADERS_SIZE, '16384')
})
