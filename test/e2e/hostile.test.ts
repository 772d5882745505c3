// Malformed and hostile input: each case gets our 4xx or is closed by uWS before our code runs; none crashes or
// wedges a worker, none reaches the upstream as a second (smuggled) request, and normal traffic keeps flowing.
import t from 'tap'
import { request } from 'undici'
import { startProxy, baseConfig } from '../helpers/proxy.js'
import { startStub } from '../helpers/stub.js'
import { rawExchange } from '../helpers/raw.js'
import { chooseUws } from '../../src/server/uws-choice.js'

// uWS 20.57 (chosen on Node 22/24) answers request lines it cannot serve with its own 505 and closes; 20.30 closes
// silently. Either is a refusal: the request never reaches a route.
const SAYS_505 = /^20\.(5[7-9]|[6-9]\d)\./.test(chooseUws().version ?? '')
const MAY_505 = new Set(['HTTP/1.0', 'absolute-form', 'random bytes'])

const { stub, origin } = await startStub({ seed: 1 })
const proxy = await startProxy(
  baseConfig(`upstreams:
  plain: { targets: ["${origin}"] }
routes:
  - { path: /p/, upstream: plain, strip_prefix: true }
`),
)
t.teardown(async () => {
  await proxy.stop()
  await stub.close()
})

const seenUrls: string[] = []
stub.on('request', (r: { url: string }) => seenUrls.push(r.url))
const SMUGGLED = 'GET /p/__stub/echo?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n'

const cases: Array<[string, string, RegExp | null]> = [
  ['CL + TE with a hidden request', `POST /p/__stub/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, null],
  ['TE + CL with a hidden request', `POST /p/__stub/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n${SMUGGLED}`, null],
  ['two Content-Length', `POST /p/__stub/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 48\r\n\r\nabcd${SMUGGLED}`, /^HTTP\/1\.1 400 /],
  ['TE gzip,chunked', `POST /p/__stub/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, /^HTTP\/1\.1 400 /],
  ['space before colon TE', `POST /p/__stub/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\nabcd${SMUGGLED}`, null],
  ['negative Content-Length', `POST /p/__stub/echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n${SMUGGLED}`, null],
  ['no Host', `GET /p/__stub/echo HTTP/1.1\r\n\r\n`, null],
  ['HTTP/1.0', `GET /p/__stub/echo HTTP/1.0\r\nHost: x\r\n\r\n`, null],
  ['unknown method', `FOO /p/__stub/echo HTTP/1.1\r\nHost: x\r\n\r\n`, null],
  ['absolute-form', `GET http://evil/p/__stub/echo HTTP/1.1\r\nHost: x\r\n\r\n`, null],
  ['bad chunk size', `POST /p/__stub/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, null],
  ['random bytes', Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256)).toString('latin1'), null],
  ['NUL in header', `GET /p/__stub/echo HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n`, null],
]

t.test('hostile requests are refused or closed, never smuggled', async (t) => {
  // cases answered with our 400 go one at a time: after a framing refusal the proxy drops further requests from
  // the same address for the rest of that event-loop turn (see accept.ts), and all cases here share 127.0.0.1
  const results: Awaited<ReturnType<typeof rawExchange>>[] = []
  for (const [, bytes, expect] of cases) if (expect) results.push(await rawExchange(proxy.port, bytes, 1200))
  const rest = await Promise.all(cases.filter(([, , e]) => !e).map(([, bytes]) => rawExchange(proxy.port, bytes, 1200)))
  const ordered = cases.map(([, , e]) => (e ? results.shift()! : rest.shift()!))
  cases.forEach(([name, , expect], i) => {
    const r = ordered[i]
    const statuses = r.data.match(/HTTP\/1\.1 (\d{3})/g) ?? []
    if (expect) t.match(r.data, expect, `${name}: our 4xx`)
    else {
      const refusal = (s: string) => /HTTP\/1\.1 4\d\d/.test(s) || (SAYS_505 && MAY_505.has(name) && s === 'HTTP/1.1 505')
      t.ok(statuses.every(refusal) && statuses.length <= 1, `${name}: closed or hanging, no 2xx (${statuses.join(',') || 'no answer'})`)
    }
  })
  // normal traffic during and after
  const ok = await Promise.all(Array.from({ length: 20 }, () => request(proxy.url('/p/__stub/echo')).then(async (r) => (await r.body.dump(), r.statusCode))))
  t.same(ok, Array(20).fill(200), 'normal requests still served')
  t.notOk(seenUrls.some((u) => u.includes('smuggled')), 'no smuggled request reached the upstream')
  t.equal(proxy.child.exitCode, null, 'proxy still running')
})
