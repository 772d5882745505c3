// The admin OpenAPI document against real answers: a running proxy is asked every endpoint the document lists (and
// the errors it promises) and each answer's status must be documented for that operation and its JSON must match the
// documented schema. Every operation of the document is exercised, so an endpoint added without a test, or a
// documented one that answers otherwise, fails here.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { startProxy } from '../helpers/proxy.js'
import { scratchDir } from '../helpers/scratch.js'
import { checkSchema } from '../helpers/json-schema.js'
import { OPENAPI } from '../../src/admin/openapi.js'

const TOK = { viewer: 'v-SECRET', operator: 'o-SECRET', admin: 'a-SECRET' }
const dir = scratchDir('openapi-')
const file = path.join(dir, 'leaky.yaml')
writeFileSync(file, `listen: 127.0.0.1:0
workers: 1
drain_timeout: 2s
admin:
  listen: 127.0.0.1:0
  metrics_public: false
  tokens:
    - { id: v, token: "${TOK.viewer}", role: viewer }
    - { id: o, token: "${TOK.operator}", role: operator }
    - { id: a, token: "${TOK.admin}", role: admin }
key_store: { file: ${path.join(dir, 'keys.sqlite')} }
ledger: { file: ${path.join(dir, 'usage.sqlite')} }
audit: { file: ${path.join(dir, 'audit.log')} }
keys: [{ id: cfg, key: "cfg-SECRET" }]
upstreams: { llm: { provider: openai, targets: [embedded] } }
routes: [{ path: /v1/, upstream: llm, auth: key }]
`)
const proxy = await startProxy(file)
t.teardown(() => proxy.stop())

type Doc = Record<string, any>
const served = await request(`http://127.0.0.1:${proxy.adminPort}/admin/openapi.json`)
const doc = (await served.body.json()) as Doc

t.test('the served document is the OpenAPI 3.1 source of truth', async (t) => {
  t.equal(served.statusCode, 200)
  t.same(doc, JSON.parse(JSON.stringify(OPENAPI)))
  t.equal(doc.openapi, '3.1.0')
  for (const [p, item] of Object.entries(doc.paths as Doc)) {
    for (const [m, op] of Object.entries(item as Doc)) {
      if (m === 'parameters') continue
      t.ok(['open', 'viewer', 'operator', 'admin'].includes(op['x-leaky-role']), `${m.toUpperCase()} ${p} names its role`)
    }
  }
})

/** Which documented operation a concrete path is, e.g. /admin/keys/k1/rotate → /admin/keys/{id}/rotate. */
function template(p: string): string | null {
  for (const tpl of Object.keys(doc.paths)) {
    const re = new RegExp(`^${tpl.replace(/\{[^}]+\}/g, '[^/]+')}$`)
    if (re.test(p)) return tpl
  }
  return null
}

const exercised = new Set<string>()

async function check(t: Tap.Test, method: string, p: string, token: string | null, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await request(`http://127.0.0.1:${proxy.adminPort}${p}`, {
    method: method as 'GET',
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.body.text()
  const tpl = template(p.split('?')[0])
  t.ok(tpl, `${p} is documented`)
  let op = doc.paths[tpl!][method.toLowerCase()]
  if (op === undefined && res.statusCode === 405) {
    // a method the path does not take: the 405 its operations document, with Allow naming them
    const methods = Object.keys(doc.paths[tpl!]).filter((m) => m !== 'parameters')
    t.same(String(res.headers.allow).split(', ').map((m) => m.toLowerCase()).filter((m) => m !== 'head').sort(), methods.sort(), `${p}: Allow lists the documented methods`)
    op = doc.paths[tpl!][methods[0]]
  } else {
    t.ok(op, `${method} ${tpl} is documented`)
    exercised.add(`${method} ${tpl}`)
  }
  const r = op.responses[String(res.statusCode)]
  t.ok(r, `${method} ${p}: status ${res.statusCode} is documented (${text.slice(0, 100)})`)
  const ctype = String(res.headers['content-type'] ?? '').split(';')[0]
  let json: unknown = null
  if (r?.content !== undefined) {
    t.ok(ctype in r.content, `${method} ${p}: content-type ${ctype} is documented`)
    if (ctype === 'application/json') {
      json = JSON.parse(text)
      const problems = checkSchema(json, r.content[ctype].schema, doc)
      t.same(problems, [], `${method} ${p} ${res.statusCode} matches its schema`)
    }
  }
  return { status: res.statusCode, json }
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Tap {
    type Test = import('tap').Test
  }
}

t.test('every answer matches the document', async (t) => {
  await check(t, 'GET', '/live', null)
  await check(t, 'POST', '/live', null)
  await check(t, 'GET', '/ready', null)
  await check(t, 'GET', '/admin/openapi.json', null)
  await check(t, 'GET', '/metrics', TOK.viewer)
  await check(t, 'GET', '/metrics', null)
  await check(t, 'GET', '/status', TOK.viewer)
  await check(t, 'GET', `/status?token=${TOK.viewer}`, null)
  await check(t, 'GET', '/status.json', TOK.viewer)
  await check(t, 'GET', '/status.json', 'wrong')
  // one request, so the report has a row to check against its schema
  const chat = await request(proxy.url('/v1/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer cfg-SECRET' },
    body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
  })
  await chat.body.text()
  const id = chat.headers['x-request-id'] as string
  await proxy.waitLog((l) => l.msg === 'access' && l.req_id === id)
  // the worker hands its rows over within a second: asked until the row is there
  let usage = await check(t, 'GET', '/admin/usage?by=model&since=1h', TOK.viewer)
  for (let i = 0; i < 50 && usage.json.rows.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 100))
    usage = await check(t, 'GET', '/admin/usage?by=model&since=1h', TOK.viewer)
  }
  t.equal(usage.status, 200)
  t.match(usage.json.rows, [{ group: 'gpt-4o-mini', requests: 1 }])
  await check(t, 'GET', '/admin/usage?by=colour', TOK.viewer)
  await check(t, 'GET', '/admin/usage', 'wrong')
  await check(t, 'POST', '/admin/usage', TOK.viewer)
  await check(t, 'POST', '/admin/reload', TOK.viewer)
  await check(t, 'POST', '/admin/reload', TOK.operator)
  await check(t, 'GET', '/admin/reload', TOK.operator)
  await check(t, 'GET', '/admin/keys', TOK.operator)
  await check(t, 'GET', '/admin/keys', TOK.admin)
  const made = await check(t, 'POST', '/admin/keys', TOK.admin, { id: 'k1', org: 'o', expires: '30d', models: ['m'], routes: ['/v1/'] })
  t.equal(made.status, 201)
  await check(t, 'POST', '/admin/keys', TOK.admin, { id: 'k1' })
  await check(t, 'POST', '/admin/keys', TOK.admin, { id: 'k2', nope: true })
  await check(t, 'POST', '/admin/keys', TOK.admin, '{not json')
  await check(t, 'POST', '/admin/keys/k1/rotate', TOK.admin, { grace: '1h' })
  await check(t, 'POST', '/admin/keys/k1/rotate', TOK.admin, { grace: 'later' })
  await check(t, 'POST', '/admin/keys/nope/rotate', TOK.admin)
  await check(t, 'POST', '/admin/keys/cfg/rotate', TOK.admin)
  await check(t, 'DELETE', '/admin/keys/cfg', TOK.admin)
  await check(t, 'DELETE', '/admin/keys/nope', TOK.admin)
  const list = await check(t, 'GET', '/admin/keys', TOK.admin)
  t.match(list.json.keys, [{ id: 'cfg', read_only: true }, { id: 'k1', read_only: false, grace_until: String }])
  await check(t, 'DELETE', '/admin/keys/k1', TOK.admin)
  await check(t, 'DELETE', '/admin/keys/k1', TOK.admin)
  await check(t, 'POST', '/admin/cache/purge', TOK.operator)
  const purged = await check(t, 'POST', '/admin/cache/purge', TOK.admin)
  t.same(purged.json, { purged: 0, entries: 0, bytes: 0 })
  await check(t, 'POST', '/admin/cache/purge', TOK.admin, { route: '/v1/', scope: 'key:k1' })
  await check(t, 'POST', '/admin/cache/purge', TOK.admin, { nope: 1 })
  await check(t, 'POST', '/admin/cache/purge', TOK.admin, '{not json')
  await check(t, 'POST', '/admin/cache/purge', TOK.admin, 'x'.repeat(70_000))
  await check(t, 'GET', '/admin/cache/purge', TOK.admin)
  await check(t, 'POST', '/admin/drain', TOK.operator)
  t.equal(await proxy.exited, 0)
  const all = Object.entries(doc.paths as Doc).flatMap(([p, item]) => Object.keys(item as Doc).filter((m) => m !== 'parameters').map((m) => `${m.toUpperCase()} ${p}`))
  t.same(all.filter((op) => !exercised.has(op)), [], 'every documented operation was asked')
})
