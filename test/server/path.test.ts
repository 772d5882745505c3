// Path normalisation before routing (src/server/path.ts): a table of paths and what routing sees, then the
// traversal forms through the real proxy, where `/public/` needs no key and `/v1/` does.
import t from 'tap'
import { createServer } from 'node:http'
import { once } from 'node:events'
import { normalizePath } from '../../src/server/path.js'
import { startProxy, baseConfig } from '../helpers/proxy.js'
import { rawExchange } from '../helpers/raw.js'

const STRICT = { mergeSlashes: true, keepEncodedSlashes: false }

t.test('normalisation table', async (t) => {
  const cases: Array<[string, string | null]> = [
    ['/v1/chat/completions', '/v1/chat/completions'],
    ['/', '/'],
    ['/public/../v1/echo', '/v1/echo'],
    ['/public/%2e%2e/v1/echo', '/v1/echo'],
    ['/public/%2E%2E/v1/echo', '/v1/echo'],
    ['/public/.%2e/v1/echo', '/v1/echo'],
    ['/public//../v1/echo', '/v1/echo'],
    ['/public/./../v1/echo', '/v1/echo'],
    ['/../../etc/passwd', '/etc/passwd'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a//b///c', '/a/b/c'],
    ['/a/b/', '/a/b/'],
    ['/%7Euser/%41', '/~user/A'],
    ['/q/%e2%82%ac', '/q/%E2%82%AC'],
    ['/v1/models/ft:gpt-4o:org', '/v1/models/ft:gpt-4o:org'],
    ['/.well-known/x', '/.well-known/x'],
    ['/a;b/c', '/a;b/c'],
    ['/public/..%2fv1/echo', null],
    ['/public/..%2Fv1/echo', null],
    ['/public/..%5cv1/echo', null],
    ['/public/..\\v1/echo', null],
    ['/public/..;/v1/echo', null],
    ['/public/.;/v1/echo', null],
    ['/a%00b', null],
    ['/a%zz', null],
    ['/a%4', null],
  ]
  for (const [path, want] of cases) t.equal(normalizePath(path, STRICT), want, path)
  t.equal(normalizePath('/a//b', { mergeSlashes: false, keepEncodedSlashes: false }), '/a//b', 'merge_slashes: false keeps them')
  t.equal(normalizePath('/a/b%2fc', { mergeSlashes: true, keepEncodedSlashes: true }), '/a/b%2Fc', 'encoded_slashes: keep forwards them undecoded')
  t.equal(normalizePath('/a/..%2f..%2fx', { mergeSlashes: true, keepEncodedSlashes: true }), '/a/..%2F..%2Fx', 'a kept %2F never becomes a dot segment')
})

t.test('through the proxy: no traversal reaches the keyed route, the upstream gets the normalised path', async (t) => {
  const seen: string[] = []
  const up = createServer((req, res) => {
    seen.push(req.url ?? '')
    res.end('ok')
  })
  up.listen(0, '127.0.0.1')
  await once(up, 'listening')
  t.teardown(() => new Promise<void>((r) => up.close(() => r())))
  const origin = `http://127.0.0.1:${(up.address() as { port: number }).port}`
  const proxy = await startProxy(baseConfig(`keys:
  - { id: app, key: sk-app }
upstreams:
  raw: { targets: ["${origin}"], headers: { authorization: "Bearer upstream-secret" } }
routes:
  - { path: /public/, upstream: raw, auth: none }
  - { path: /v1/, upstream: raw, auth: key }
`))
  t.teardown(() => proxy.stop())
  const get = async (path: string) => {
    const r = await rawExchange(proxy.port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
    return Number(r.data.slice(9, 12))
  }
  for (const p of ['/public/../v1/echo', '/public/%2e%2e/v1/echo', '/public/%2E%2E/v1/echo', '/public//../v1/echo', '/public/./../v1/echo']) {
    t.equal(await get(p), 401, `${p}: routed as /v1/echo, which needs a key`)
  }
  for (const p of ['/public/..%2fv1/echo', '/public/..;/v1/echo', '/public/..%5Cv1/echo']) t.equal(await get(p), 400, `${p}: refused`)
  t.equal(await get('/public/%7Ehome//x'), 200)
  t.same(seen, ['/public/~home/x'], 'only the normal request reached the upstream, normalised')
  const refused = await proxy.waitLog((l) => l.msg === 'access' && l.error === 'LEAKY_BAD_PATH')
  t.equal(refused.status, 400)
})
