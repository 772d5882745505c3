// A bounded, continuous client load against a running proxy, for the upgrade bench and the upgrade-under-load test.
// Every request is a POST (undici never retries a non-idempotent request, so a connection error is seen, not
// hidden). Loops:
//   keepalive  chat completions on one kept-alive connection each
//   fresh      chat completions on a new connection each (Connection: close), so connections keep arriving
//              while listeners close: the accept-queue case tcp_migrate_req is about
//   sse        long streamed completions (paced by the stub), each checked to end with `data: [DONE]`
//   limited    requests to a route with a small request budget: how many got through says if buckets survived
// Each loop runs until stop(); there is no think time, so connections stay busy.
import { Pool } from 'undici'

const CHAT = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'ping' }], max_tokens: 8 })
const STREAM = (tokens) => JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'tell me' }], stream: true, max_tokens: tokens })

export class Load {
  /**
   * @param {{ origin: string, keepalive?: number, fresh?: number, sse?: number, limited?: number,
   *           ssePath?: string, chatPath?: string, limitedPath?: string, sseTokens?: number, sseTps?: number }} o
   */
  constructor(o) {
    this.o = { keepalive: 4, fresh: 2, sse: 2, limited: 1, chatPath: '/v1/chat/completions', limitedPath: '/limited/v1/chat/completions', sseTokens: 60, sseTps: 30, ...o }
    this.running = false
    this.loops = []
    this.pools = []
    this.stats = {
      requests: 0,
      ok: 0,
      /** responses with an unexpected status: { loop, status, body } */
      failed: [],
      /** connection-level failures: { loop, code, message } */
      errors: [],
      streams: 0,
      /** streams that did not end with [DONE] or carried an error event */
      cut: [],
      limitedOk: 0,
      limited429: 0,
      /** [ms since start, x-ratelimit-remaining-tokens] in response order */
      remaining: [],
    }
    this.t0 = 0
  }

  pool(connections) {
    // keepAliveTimeout above any upgrade here: a connection the client itself drops is not what is measured
    const p = new Pool(this.o.origin, { connections, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 })
    this.pools.push(p)
    return p
  }

  start() {
    this.running = true
    this.t0 = performance.now()
    for (let i = 0; i < this.o.keepalive; i++) this.loops.push(this.chatLoop('keepalive', this.pool(1), false))
    for (let i = 0; i < this.o.fresh; i++) this.loops.push(this.chatLoop('fresh', this.pool(1), true))
    for (let i = 0; i < this.o.sse; i++) this.loops.push(this.sseLoop(this.pool(1)))
    for (let i = 0; i < this.o.limited; i++) this.loops.push(this.limitedLoop(this.pool(1)))
  }

  async stop() {
    this.running = false
    await Promise.all(this.loops)
    await Promise.all(this.pools.map((p) => p.close()))
    return this.stats
  }

  error(loop, err) {
    this.stats.errors.push({ loop, code: err.code ?? err.name, message: err.message })
  }

  async chatLoop(loop, pool, fresh) {
    while (this.running) {
      this.stats.requests++
      try {
        const r = await pool.request({ path: this.o.chatPath, method: 'POST', headers: { 'content-type': 'application/json' }, body: CHAT, reset: fresh })
        const body = await r.body.text()
        if (r.statusCode === 200) this.stats.ok++
        else this.stats.failed.push({ loop, status: r.statusCode, body: body.slice(0, 200) })
        const rem = r.headers['x-ratelimit-remaining-tokens']
        if (typeof rem === 'string') this.stats.remaining.push([Math.round(performance.now() - this.t0), Number(rem)])
      } catch (err) {
        this.error(loop, err)
      }
    }
  }

  async sseLoop(pool) {
    while (this.running) {
      this.stats.requests++
      this.stats.streams++
      try {
        const r = await pool.request({
          path: this.o.chatPath,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-stub-tps': String(this.o.sseTps) },
          body: STREAM(this.o.sseTokens),
        })
        const text = await r.body.text()
        if (r.statusCode !== 200) this.stats.failed.push({ loop: 'sse', status: r.statusCode, body: text.slice(0, 200) })
        else if (!text.trimEnd().endsWith('data: [DONE]') || text.includes('event: error')) this.stats.cut.push(text.slice(-200))
        else this.stats.ok++
      } catch (err) {
        this.error('sse', err)
      }
    }
  }

  async limitedLoop(pool) {
    while (this.running) {
      this.stats.requests++
      try {
        const r = await pool.request({ path: this.o.limitedPath, method: 'POST', headers: { 'content-type': 'application/json' }, body: CHAT })
        const body = await r.body.text()
        if (r.statusCode === 200) this.stats.limitedOk++
        else if (r.statusCode === 429) this.stats.limited429++
        else this.stats.failed.push({ loop: 'limited', status: r.statusCode, body: body.slice(0, 200) })
      } catch (err) {
        this.error('limited', err)
      }
      // a few requests a second is enough to cross every upgrade
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

/** The largest rise of the remaining-token budget between two consecutive observations (a reset shows as ~all of it). */
export function largestRise(remaining) {
  let max = 0
  for (let i = 1; i < remaining.length; i++) max = Math.max(max, remaining[i][1] - remaining[i - 1][1])
  return max
}
