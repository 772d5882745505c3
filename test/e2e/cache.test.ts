// The response cache over real sockets: a real proxy (2 worker threads) in front of a counting upstream started
// here. Coalescing across both workers (JSON and SSE), follower and leader aborts, tenant isolation, stream replay
// and token charging, the bypass rules, purge and reload.
import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { request } from 'undici'
import { startProxy, baseConfig, writeConfig, scrapeMetrics, metricValue, type Proxy } from '../helpers/proxy.js'
import { startCountingUpstream, EVENTS } from '../helpers/counting-upstream.js'

const up = await startCountingUpstream()
const config = (cache: string, extra = '') => baseConfig(`limits:
  key-tokens: { per: key, tokens: 1000000/month, burst: 1000000 }
keys:
  - { id: alice, key: sk-alice, org: acme }
  - { id: bob, key: sk-bob, org: acme }
upstreams:
  llm: { provider: openai, targets: ["${up.origin}"] }
${extra}routes:
  - { path: /v1/, upstream: llm, auth: key, limits: [key-tokens], cache: { ttl: 1h } }
  - { path: /g/, upstream: llm, strip_prefix: true, cache: { scope: global } }
  - { path: /org/, upstream: llm, strip_prefix: true, auth: key, cache: { scope: org } }
  - { path: /paced/, upstream: llm, strip_prefix: true, auth: key, cache: { replay_pace: original } }
  - { path: /small/, upstream: llm, strip_prefix: true, auth: key, cache: { max_entry: 200b } }
  - { path: /swr/, upstream: llm, strip_prefix: true, auth: key, cache: { ttl: 300ms, stale_while_revalidate: 1h } }
cache: ${cache}
`)
const file = writeConfig(config('{ memory: 2mb }'))
const proxy: Proxy = await startProxy(file)
t.teardown(async () => {
  await proxy.stop()
  await up.close()
})

const chat = (content: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], temperature: 0, max_tokens: 20, ...extra })

async function post(path: string, body: string, key = 'sk-alice', headers: Record<string, string> = {}, signal?: AbortSignal) {
  const res = await request(proxy.url(path), {
    method: 'POST', body, signal,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
  })
  const text = await res.body.text()
  const xCache = String(res.headers['x-cache'])
  // a fixed-length answer reaches the client before the upstream's end reaches the cache owner: a sequential repeat
  // in that gap would follow the still-open flight (COALESCED). The tests' repeats mean "after it landed".
  if (xCache === 'MISS' && signal === undefined) await untilZero('leaky_cache_flights')
  return { status: res.statusCode, text, xCache, reqId: String(res.headers['x-request-id']) }
}

/** Resolve once the gauge `name` is 0 (scraped every 10 ms). */
async function untilZero(name: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if ((await metric(name)) === 0) return
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`${name} never went back to 0`)
}

async function metric(name: string): Promise<number> {
  const v = metricValue(await scrapeMetrics(proxy), name)
  return Number.isNaN(v) ? 0 : v
}

/** Resolve once `name` reaches `n` (scraped every 25 ms: the owner's counters change when requests join). */
async function until(name: string, n: number): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if ((await metric(name)) >= n) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`${name} never reached ${n}`)
}

function sseData(text: string): string[] {
  return text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6))
}

async function coalesce(t: Test, stream: boolean): Promise<void> {
  const before = up.calls.length
  const coalesced = await metric('leaky_cache_coalesced_total')
  const saved = await metric('leaky_cache_tokens_saved_total')
  const savedUsd = await metric('leaky_cache_cost_saved_usd_total')
  up.hold()
  t.teardown(() => up.release())
  const body = chat(`coalesce ${stream ? 'sse' : 'json'}`, stream ? { stream: true } : {})
  // 100 requests on 100 connections: the kernel spreads them over both worker threads (SO_REUSEPORT)
  const all = Array.from({ length: 100 }, () => post('/v1/chat/completions', body))
  await up.arrived(before + 1)
  await until('leaky_cache_coalesced_total', coalesced + 99)
  up.release()
  const rs = await Promise.all(all)
  t.equal(up.calls.length - before, 1, 'exactly one upstream call')
  t.same(rs.map((r) => r.status), Array(100).fill(200), '100 answers')
  t.equal(new Set(rs.map((r) => r.text)).size, 1, '100 identical answers')
  if (stream) t.same(sseData(rs[0].text).slice(0, EVENTS.length).map((d) => JSON.parse(d).choices[0].delta.content), EVENTS, 'the stream as sent')
  else t.equal(JSON.parse(rs[0].text).choices[0].message.content, EVENTS.join(''))
  t.same(rs.map((r) => r.xCache).sort(), ['MISS', ...Array(99).fill('COALESCED')].sort(), 'one leader, 99 coalesced')
  const ids = new Set(rs.map((r) => r.reqId))
  await proxy.waitLog(() => proxy.access().filter((l) => ids.has(l.req_id as string)).length === 100)
  const lines = proxy.access().filter((l) => ids.has(l.req_id as string))
  t.same(new Set(lines.map((l) => l.worker)), new Set([0, 1]), 'served by both worker threads')
  t.same(lines.map((l) => l.cache).sort(), ['miss', ...Array(99).fill('coalesced')].sort(), 'access lines say cache: miss | coalesced')
  const again = await post('/v1/chat/completions', body)
  t.equal(again.xCache, 'HIT', 'stored once complete')
  t.equal(again.text, rs[0].text)
  t.equal(up.calls.length - before, 1)
  t.equal(await metric('leaky_cache_tokens_saved_total') - saved, 100 * 15, 'tokens saved: 99 coalesced and 1 hit, 15 each')
  // the leader's answer at the shipped gpt-4o-mini prices (0.15 / 0.60 USD per 1 M tokens), saved 100 times
  const leader = lines.find((l) => l.cache === 'miss')!
  const cost = ((leader.tokens_prompt as number) * 0.15 + (leader.tokens_completion as number) * 0.6) / 1e6
  t.equal(leader.cost_usd, cost.toFixed(6), 'the leader was priced')
  const usd = await metric('leaky_cache_cost_saved_usd_total') - savedUsd
  t.ok(Math.abs(usd - 100 * cost) < 1e-12, `cost saved ${usd} USD = 100 × ${cost}`)
}

t.test('100 concurrent identical JSON requests across both workers: 1 upstream call, 100 identical answers', (t) => coalesce(t, false))
t.test('100 concurrent identical SSE requests across both workers: 1 upstream call, 100 identical streams', (t) => coalesce(t, true))

t.test('a follower\'s abort never cancels the leader; the leader\'s abort finishes the call for the followers', async (t) => {
  const before = up.calls.length
  const coalesced = await metric('leaky_cache_coalesced_total')
  up.hold()
  t.teardown(() => up.release())
  const body = chat('aborts', { stream: true })
  const leaderAbort = new AbortController()
  const leader = post('/v1/chat/completions', body, 'sk-alice', {}, leaderAbort.signal).catch((e: Error) => e)
  await up.arrived(before + 1)
  const followerAbort = new AbortController()
  const f1 = post('/v1/chat/completions', body, 'sk-alice', {}, followerAbort.signal).catch((e: Error) => e)
  const f2 = post('/v1/chat/completions', body)
  await until('leaky_cache_coalesced_total', coalesced + 2)
  followerAbort.abort()
  t.type(await f1, Error, 'the follower gave up')
  await proxy.waitLog((l) => l.msg === 'access' && l.status === 499 && l.cache === 'coalesced')
  leaderAbort.abort()
  t.type(await leader, Error, 'the leader gave up')
  await proxy.waitLog((l) => l.msg === 'access' && l.status === 499 && l.cache === 'miss')
  up.release()
  const r = await f2
  t.equal(r.status, 200)
  t.same(sseData(r.text).slice(0, EVENTS.length).map((d) => JSON.parse(d).choices[0].delta.content), EVENTS, 'the remaining follower got the whole stream')
  t.ok(r.text.endsWith('data: [DONE]\n\n'))
  t.equal(up.calls.length - before, 1, 'one upstream call')
  t.notOk(up.calls[before].aborted, 'the upstream call was never cancelled')
  const again = await post('/v1/chat/completions', body)
  t.equal(again.xCache, 'HIT', 'the answer finished for the followers was stored')
  t.equal(again.text, r.text)
})

t.test('tenant isolation: scope key never serves one key\'s answer to another; org and global share as configured', async (t) => {
  const body = chat('isolation')
  const before = up.calls.length
  const a = await post('/v1/chat/completions', body, 'sk-alice')
  const b = await post('/v1/chat/completions', body, 'sk-bob')
  t.equal(up.calls.length - before, 2, 'two keys, two upstream calls')
  t.equal(a.xCache, 'MISS')
  t.equal(b.xCache, 'MISS')
  t.not(a.text, b.text, 'each key got its own answer')
  const a2 = await post('/v1/chat/completions', body, 'sk-alice')
  const b2 = await post('/v1/chat/completions', body, 'sk-bob')
  t.same([a2.xCache, a2.text === a.text, b2.xCache, b2.text === b.text], ['HIT', true, 'HIT', true], 'each key hits its own entry')
  t.equal(up.calls.length - before, 2)
  // same org: shared under scope: org
  const o1 = await post('/org/chat/completions', body, 'sk-alice')
  const o2 = await post('/org/chat/completions', body, 'sk-bob')
  t.same([o1.xCache, o2.xCache, o1.text === o2.text], ['MISS', 'HIT', true], 'scope: org shares within the org')
  // scope: global shares across everyone
  const g1 = await post('/g/chat/completions', body, 'anyone')
  const g2 = await post('/g/chat/completions', body, 'someone-else')
  t.same([g1.xCache, g2.xCache], ['MISS', 'HIT'], 'scope: global shares')
  t.equal(up.calls.length - before, 4)
})

t.test('the key is canonical: key order, whitespace and ignored fields (user, stream_options, metadata) share an entry', async (t) => {
  const before = up.calls.length
  const a = await post('/v1/chat/completions', JSON.stringify({ temperature: 0, model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'canon' }], user: 'u1' }))
  const b = await post('/v1/chat/completions', `{ "messages": [ { "content": "canon", "role": "user" } ], "model": "gpt-4o-mini", "temperature": 0, "user": "u2", "metadata": {"x": 1} }`)
  t.same([a.xCache, b.xCache], ['MISS', 'HIT'])
  t.equal(up.calls.length - before, 1)
  const c = await post('/v1/chat/completions', JSON.stringify({ temperature: 0, model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'canon!' }] }))
  t.equal(c.xCache, 'MISS', 'another prompt, another entry')
})

t.test('a hit of a streamed answer replays the same events; a non-stream request never gets a stream entry', async (t) => {
  const before = up.calls.length
  const body = chat('replay', { stream: true })
  const first = await post('/v1/chat/completions', body)
  const hit = await post('/v1/chat/completions', body)
  t.same([first.xCache, hit.xCache], ['MISS', 'HIT'])
  t.same(sseData(hit.text), sseData(first.text), 'the same events')
  t.notOk(hit.text.includes('"usage"'), 'the usage chunk the proxy asked for is stripped on replay as it was live')
  // the client asks for usage itself: the stored chunk comes back (stream_options is not part of the key)
  const withUsage = await post('/v1/chat/completions', chat('replay', { stream: true, stream_options: { include_usage: true } }))
  t.equal(withUsage.xCache, 'HIT')
  t.ok(sseData(withUsage.text).some((d) => d.includes('"total_tokens":15')), 'usage chunk replayed to a client that asked for it')
  const json = await post('/v1/chat/completions', chat('replay'))
  t.equal(json.xCache, 'MISS', 'the non-stream request is not served the stream entry')
  t.equal(JSON.parse(json.text).object, 'chat.completion')
  t.equal(up.calls.length - before, 2)
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === hit.reqId)
  t.equal(line.cache, 'hit')
  t.equal(line.tokens_charged, 0, 'charge_tokens: false — a hit charges no tokens')
})

t.test('replay_pace: original replays a stored stream with the gaps it came with', async (t) => {
  up.gapMs = 60
  t.teardown(() => (up.gapMs = 0))
  const body = chat('paced', { stream: true })
  const first = await post('/paced/chat/completions', body)
  up.gapMs = 0
  const start = performance.now()
  const hit = await post('/paced/chat/completions', body)
  const took = performance.now() - start
  t.same([first.xCache, hit.xCache], ['MISS', 'HIT'])
  t.same(sseData(hit.text), sseData(first.text), 'the same events')
  // six 60 ms gaps between the first event and the last: a timer never fires early, so this bound holds under load
  t.ok(took >= 300, `the replay took ${took.toFixed(0)} ms, as the original did`)
})

t.test('stale_while_revalidate: past ttl one request refreshes while the others are served the stale answer', async (t) => {
  const body = chat('stale')
  const first = await post('/swr/chat/completions', body)
  t.equal(first.xCache, 'MISS')
  // the entry's ttl is 300 ms: nothing to await but time itself
  await new Promise((r) => setTimeout(r, 400))
  const before = up.calls.length
  up.hold()
  t.teardown(() => up.release())
  const refresh = post('/swr/chat/completions', body)
  await up.arrived(before + 1)
  const stale = await post('/swr/chat/completions', body)
  t.equal(stale.xCache, 'STALE', 'served at once while the refresh is under way')
  t.equal(stale.text, first.text, 'the old answer')
  up.release()
  const fresh = await refresh
  t.equal(fresh.xCache, 'MISS', 'the refreshing request went upstream')
  t.not(fresh.text, first.text, 'and got a new answer')
  const after = await post('/swr/chat/completions', body)
  t.same([after.xCache, after.text], ['HIT', fresh.text], 'the refreshed entry is served from then on')
  t.equal(up.calls.length - before, 1)
})

t.test('max_entry: a larger request bypasses; a larger answer is relayed to coalesced requests but never stored', async (t) => {
  const big = chat('x'.repeat(300))
  t.equal((await post('/small/chat/completions', big)).xCache, 'BYPASS', 'a 397-byte body over max_entry 200b')
  const before = up.calls.length
  const coalesced = await metric('leaky_cache_coalesced_total')
  up.hold()
  t.teardown(() => up.release())
  // a 107-byte request whose ~300-byte answer is over max_entry; the follower cannot be handed it whole
  const body = chat('big answer')
  const leader = post('/small/chat/completions', body)
  await up.arrived(before + 1)
  const follower = post('/small/chat/completions', body)
  await until('leaky_cache_coalesced_total', coalesced + 1)
  up.release()
  const [l, f] = await Promise.all([leader, follower])
  t.same([l.status, f.status], [200, 200], 'both answered')
  t.equal(l.xCache, 'MISS')
  t.equal(f.xCache, 'BYPASS', 'the follower went upstream itself')
  t.equal(JSON.parse(f.text).choices[0].message.content, EVENTS.join(''))
  t.equal(up.calls.length - before, 2)
  t.equal((await post('/small/chat/completions', body)).xCache, 'MISS', 'never stored')
})

t.test('bypass: sampled requests, Cache-Control no-store, non-JSON bodies; never stored: upstream no-store/private and errors', async (t) => {
  let before = up.calls.length
  const sampled = chat('sampled', { temperature: 0.7 })
  const s1 = await post('/v1/chat/completions', sampled)
  const s2 = await post('/v1/chat/completions', sampled)
  t.same([s1.xCache, s2.xCache], ['BYPASS', 'BYPASS'], 'when: deterministic skips a sampled request')
  t.equal(up.calls.length - before, 2)
  const seeded = chat('seeded', { temperature: 0.7, seed: 42 })
  t.equal((await post('/v1/chat/completions', seeded)).xCache, 'MISS', 'a seed makes it deterministic')
  t.equal((await post('/v1/chat/completions', seeded)).xCache, 'HIT')
  t.equal((await post('/v1/chat/completions', seeded, 'sk-alice', { 'cache-control': 'no-store' })).xCache, 'BYPASS', 'client no-store')
  const fresh = await post('/v1/chat/completions', seeded, 'sk-alice', { 'cache-control': 'no-cache' })
  t.equal(fresh.xCache, 'MISS', 'client no-cache: not served from the cache')
  before = up.calls.length
  for (const cc of ['no-store', 'private']) {
    up.headers = { 'cache-control': cc }
    const b = chat(`upstream ${cc}`)
    const r1 = await post('/v1/chat/completions', b)
    const r2 = await post('/v1/chat/completions', b)
    t.same([r1.xCache, r2.xCache], ['MISS', 'MISS'], `upstream Cache-Control: ${cc} is not stored`)
  }
  up.headers = {}
  up.status = 500
  const e = chat('upstream error')
  const e1 = await post('/v1/chat/completions', e)
  up.status = 200
  const e2 = await post('/v1/chat/completions', e)
  t.same([e1.status, e2.status, e2.xCache], [500, 200, 'MISS'], 'a 5xx is not stored')
  t.equal(up.calls.length - before, 6)
})

t.test('purge by scope, by route and all; a reload flushes only when the cache settings changed', async (t) => {
  const admin = (body: unknown) => request(`http://127.0.0.1:${proxy.adminPort}/admin/cache/purge`, { method: 'POST', body: JSON.stringify(body) })
    .then(async (r) => ({ status: r.statusCode, json: JSON.parse(await r.body.text()) as { purged: number, entries: number } }))
  const body = chat('purge me')
  await post('/v1/chat/completions', body, 'sk-alice')
  await post('/v1/chat/completions', body, 'sk-bob')
  const p1 = await admin({ scope: 'key:bob' })
  t.equal(p1.status, 200)
  t.ok(p1.json.purged >= 1, 'bob\'s entries purged')
  t.same([(await post('/v1/chat/completions', body, 'sk-alice')).xCache, (await post('/v1/chat/completions', body, 'sk-bob')).xCache], ['HIT', 'MISS'])
  const p2 = await admin({ route: '/v1/' })
  t.ok(p2.json.purged >= 2)
  t.equal((await post('/v1/chat/completions', body, 'sk-alice')).xCache, 'MISS', 'route purged')
  t.equal((await admin({ nope: 1 })).status, 400, 'unknown field refused')
  // a reload that leaves the cache settings alone keeps the entries
  writeFileSync(file, config('{ memory: 2mb }', '  spare: { targets: ["http://127.0.0.1:9"] }\n'))
  process.kill(proxy.child.pid!, 'SIGHUP')
  await proxy.waitLog((l) => l.msg === 'reloaded' && (l.applied as string[]).includes('upstreams'))
  t.equal((await post('/v1/chat/completions', body, 'sk-alice')).xCache, 'HIT', 'kept across an unrelated reload')
  // charge_tokens changes: flushed, and from now on a hit charges the stored answer's tokens
  writeFileSync(file, config('{ memory: 2mb, charge_tokens: true }', '  spare: { targets: ["http://127.0.0.1:9"] }\n'))
  process.kill(proxy.child.pid!, 'SIGHUP')
  await proxy.waitLog((l) => l.msg === 'reloaded' && (l.applied as string[]).includes('cache'))
  const sse = chat('charged', { stream: true })
  t.equal((await post('/v1/chat/completions', body, 'sk-alice')).xCache, 'MISS', 'flushed by the reload')
  const m = await post('/v1/chat/completions', sse)
  const h = await post('/v1/chat/completions', sse)
  t.same([m.xCache, h.xCache], ['MISS', 'HIT'])
  const line = await proxy.waitLog((l) => l.msg === 'access' && l.req_id === h.reqId)
  t.equal(line.tokens_charged, 15, 'charge_tokens: true — the hit charged the stored answer\'s usage (9 + 6)')
  t.equal((await admin({})).status, 200, 'purge all')
  t.equal(await metric('leaky_cache_entries'), 0)
})
