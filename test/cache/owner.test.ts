// The cache owner in-process, over real MessagePorts (as a worker thread talks to it): early refresh (XFetch),
// stale_while_revalidate, handing a failed leader's call to a follower, a worker thread going away, LRU by bytes.
import t from 'tap'
import type { MessagePort } from 'node:worker_threads'
import { parseConfig } from '../../src/config/index.js'
import { CacheOwner } from '../../src/cache/owner.js'
import { CacheStore, entrySize, type Entry } from '../../src/cache/store.js'
import { O, W, Served, type ToWorker, type GetMsg } from '../../src/cache/protocol.js'
import { createLogger } from '../../src/observability/logger.js'

const { logger } = createLogger({ level: 'silent', bindings: {} })

function owner(beta: number, clock: { ms: number }, random = 0.5): CacheOwner {
  const r = parseConfig(`cache: { xfetch_beta: ${beta} }\n`, 'test.yaml', {})
  if (!r.ok) throw new Error('config')
  const o = new CacheOwner(r.config, logger, { now: () => clock.ms, random: () => random })
  t.teardown(() => o.close())
  return o
}

/** A worker's end of the owner's port: send, and read the owner's answers in order. */
function worker(o: CacheOwner): { port: MessagePort; next(): Promise<ToWorker> } {
  const port = o.connect()
  const queue: ToWorker[] = []
  let wake: (() => void) | null = null
  port.on('message', (m: ToWorker) => {
    queue.push(m)
    wake?.()
  })
  return {
    port,
    async next() {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r))
      return queue.shift()!
    },
  }
}

const get = (id: number, key = 'k', over: Partial<GetMsg> = {}): GetMsg =>
  ({ t: W.GET, id, key, route: '/v1/', scope: 'key:a', ttl: 1000, swr: 0, maxEntry: 1 << 20, fresh: false, ...over })

/** Lead `key` on `w` and store a 200 answer whose upstream call took `took` ms on the owner's clock. */
async function store(w: ReturnType<typeof worker>, clock: { ms: number }, id: number, key = 'k', over: Partial<GetMsg> = {}, took = 100): Promise<void> {
  w.port.postMessage(get(id, key, over))
  t.match(await w.next(), { t: O.LEAD, id })
  clock.ms += took
  w.port.postMessage({ t: W.HEAD, id, key, status: 200, headers: ['content-type', 'application/json'], sse: false, store: true })
  w.port.postMessage({ t: W.DATA, id, key, chunk: new TextEncoder().encode(`{"n":${id}}`) })
  w.port.postMessage({ t: W.END, id, key, usage: 15 })
  // the owner reads its clock when it handles a message: wait until it has handled these before the test moves it
  w.port.postMessage(get(id + 1000, `sync-${id}`))
  t.match(await w.next(), { t: O.LEAD, id: id + 1000 })
}

t.test('XFetch: near expiry, a costly entry is refreshed early by one request while the others still hit', async (t) => {
  const clock = { ms: 1_000_000 }
  // random 0.01: -ln(0.01) ≈ 4.6, × delta 100 ms × beta 1 ≈ 460 ms ahead of expiry
  const o = owner(1, clock, 0.01)
  const w = worker(o)
  await store(w, clock, 1)
  clock.ms += 100 // 900 ms left: not yet
  w.port.postMessage(get(2))
  t.match(await w.next(), { t: O.HIT, ids: [2], served: Served.HIT })
  clock.ms += 500 // 400 ms left: within the 460 ms the draw allows
  const misses = o.counters.misses
  w.port.postMessage(get(3))
  t.match(await w.next(), { t: O.LEAD, id: 3 }, 'one request refreshes early')
  w.port.postMessage(get(4))
  t.match(await w.next(), { t: O.HIT, ids: [4], served: Served.HIT }, 'meanwhile the others still get the fresh entry')
  t.equal(o.counters.misses - misses, 1, 'one early refresh counted as a miss')
})

t.test('XFetch off (beta 0): an entry is served until it expires', async (t) => {
  const clock = { ms: 1_000_000 }
  const o = owner(0, clock, 0.0001)
  const w = worker(o)
  await store(w, clock, 1)
  clock.ms += 999
  w.port.postMessage(get(2))
  t.match(await w.next(), { t: O.HIT, served: Served.HIT })
  clock.ms += 1
  w.port.postMessage(get(3))
  t.match(await w.next(), { t: O.LEAD, id: 3 }, 'expired: a miss')
})

t.test('stale_while_revalidate: past ttl one request refreshes, the others are served stale; past the window, a miss', async (t) => {
  const clock = { ms: 1_000_000 }
  const o = owner(0, clock)
  const w = worker(o)
  await store(w, clock, 1, 'k', { swr: 5000 })
  clock.ms += 2000 // expired 1 s ago, within the 5 s window
  w.port.postMessage(get(2, 'k', { swr: 5000 }))
  t.match(await w.next(), { t: O.LEAD, id: 2 }, 'the first request refreshes')
  w.port.postMessage(get(3, 'k', { swr: 5000 }))
  const stale = await w.next()
  t.match(stale, { t: O.HIT, ids: [3], served: Served.STALE, age: 2 }, 'the next is served stale')
  t.equal(o.counters.stale, 1)
  w.port.postMessage({ t: W.HEAD, id: 2, key: 'k', status: 200, headers: [], sse: false, store: true })
  w.port.postMessage({ t: W.DATA, id: 2, key: 'k', chunk: new TextEncoder().encode('{"n":2}') })
  w.port.postMessage({ t: W.END, id: 2, key: 'k', usage: 15 })
  w.port.postMessage(get(4, 'k', { swr: 5000 }))
  const fresh = await w.next()
  t.match(fresh, { t: O.HIT, served: Served.HIT })
  t.equal(new TextDecoder().decode((fresh as { chunks: Uint8Array[] }).chunks[0]), '{"n":2}', 'refreshed')
  clock.ms += 7000
  w.port.postMessage(get(5, 'k', { swr: 5000 }))
  t.match(await w.next(), { t: O.LEAD, id: 5 }, 'past ttl + stale_while_revalidate: a plain miss')
})

t.test('a leader that fails before its followers got anything hands the call to one of them', async (t) => {
  const clock = { ms: 1_000_000 }
  const o = owner(0, clock)
  const a = worker(o)
  const b = worker(o)
  a.port.postMessage(get(1))
  t.match(await a.next(), { t: O.LEAD, id: 1 })
  b.port.postMessage(get(7))
  t.match(await b.next(), { t: O.FOLLOW, id: 7 })
  t.match(await a.next(), { t: O.FOLLOWED, id: 1 }, 'the leader learns it is followed')
  b.port.postMessage(get(8))
  t.match(await b.next(), { t: O.FOLLOW, id: 8 })
  a.port.postMessage({ t: W.FAIL, id: 1, key: 'k' })
  t.match(await b.next(), { t: O.LEAD, id: 7 }, 'the first follower leads now')
  t.match(await b.next(), { t: O.FOLLOWED, id: 7 }, 'and is followed by the other')
  // the old leader's late messages are ignored
  a.port.postMessage({ t: W.END, id: 1, key: 'k', usage: 1 })
  b.port.postMessage({ t: W.HEAD, id: 7, key: 'k', status: 200, headers: [], sse: false, store: true })
  b.port.postMessage({ t: W.DATA, id: 7, key: 'k', chunk: new TextEncoder().encode('{}') })
  b.port.postMessage({ t: W.END, id: 7, key: 'k', usage: 3 })
  t.match(await b.next(), { t: O.HIT, ids: [8], served: Served.COALESCED, usage: 3 }, 'the remaining follower gets the new leader\'s answer')
  t.equal(o.flights.size, 0)
})

t.test('an SSE leader that fails after its followers got the head fails them; a worker thread going away fails over', async (t) => {
  const clock = { ms: 1_000_000 }
  const o = owner(0, clock)
  const a = worker(o)
  const b = worker(o)
  a.port.postMessage(get(1))
  t.match(await a.next(), { t: O.LEAD })
  b.port.postMessage(get(2))
  t.match(await b.next(), { t: O.FOLLOW })
  t.match(await a.next(), { t: O.FOLLOWED, id: 1 })
  a.port.postMessage({ t: W.HEAD, id: 1, key: 'k', status: 200, headers: ['content-type', 'text/event-stream'], sse: true, store: true })
  a.port.postMessage({ t: W.DATA, id: 1, key: 'k', chunk: new TextEncoder().encode('data: 1\n\n') })
  t.match(await b.next(), { t: O.HEAD, ids: [2], status: 200 })
  t.match(await b.next(), { t: O.DATA, ids: [2] })
  a.port.postMessage({ t: W.FAIL, id: 1, key: 'k' })
  t.match(await b.next(), { t: O.FAIL, ids: [2] }, 'a cut stream fails its followers, never stored')
  t.equal(o.store.size, 0)
  // a leader whose thread exits: its port closes, the follower takes over
  a.port.postMessage(get(3, 'j'))
  t.match(await a.next(), { t: O.LEAD, id: 3 })
  b.port.postMessage(get(4, 'j'))
  t.match(await b.next(), { t: O.FOLLOW, id: 4 })
  a.port.close()
  const m = await b.next()
  t.match(m, { t: O.LEAD, id: 4 }, 'the follower leads once the leader\'s worker is gone')
})

t.test('followers that waited longer than cache.wait go upstream themselves', async (t) => {
  const clock = { ms: 1_000_000 }
  const o = owner(0, clock)
  const a = worker(o)
  a.port.postMessage(get(1))
  t.match(await a.next(), { t: O.LEAD })
  a.port.postMessage(get(2))
  t.match(await a.next(), { t: O.FOLLOW })
  t.match(await a.next(), { t: O.FOLLOWED })
  clock.ms += 61_000
  t.match(await a.next(), { t: O.BYPASS, id: 2 }, 'swept within a second')
  a.port.postMessage(get(3))
  t.match(await a.next(), { t: O.BYPASS, id: 3 }, 'and the flight takes no new followers')
})

t.test('store: bounded by bytes, least recently used evicted first, evictions counted', async (t) => {
  const s = new CacheStore(3 * entrySize('kN', [], [new Uint8Array(100)]))
  const e = (key: string): Entry => {
    const chunks = [new Uint8Array(100)]
    return { key, route: '/', scope: '', status: 200, headers: [], sse: false, chunks, times: [], usage: -1, cost: -1, bytes: entrySize(key, [], chunks), storedAt: 0, expiresAt: 1, staleUntil: 1, delta: 0 }
  }
  s.set(e('k1'))
  s.set(e('k2'))
  s.set(e('k3'))
  s.get('k1') // k2 is now the least recently used
  s.set(e('k4'))
  t.equal(s.size, 3)
  t.equal(s.get('k2'), undefined, 'k2 evicted')
  t.ok(s.get('k1') !== undefined && s.get('k3') !== undefined && s.get('k4') !== undefined)
  t.equal(s.evictions, 1)
  t.ok(s.bytes <= s.limit)
  t.notOk(s.set({ ...e('huge'), bytes: s.limit + 1 }), 'an entry larger than the whole cache is not stored')
  t.equal(s.purge((x) => x.key === 'k1'), 1)
  t.equal(s.clear(), 2)
  t.equal(s.bytes, 0)
})

