// Issue-19 measurement: proxy CPU of a translated stream vs a pass-through one, same run, interleaved rounds. One
// proxy (1 worker thread) with a models route in front of the stub: `gpt-4o-mini` passes through (OpenAI → OpenAI,
// the meter only), `gemini-2.5-flash` and `claude-3-5-haiku` are translated (OpenAI chat ↔ Gemini / Anthropic,
// event by event). Every answer is a stream of TOKENS tokens (x-stub-tokens) with include_usage. Reported: proxy CPU
// per request and per SSE event the client received (the meter's and the translator's work together).
//   node bench/macro/frontdoor.mjs        (ROUNDS=3 REQUESTS=300 CONCURRENCY=16 TOKENS=200; ~30 s)
import { Agent, request } from 'undici'
import { startStub } from './leaky.mjs'
import { cpuSeconds } from './cpu.mjs'
import { makeRig, startLeaky, withRig, yamlHead } from './ab.mjs'

const ROUNDS = Number(process.env.ROUNDS ?? 3)
const REQUESTS = Number(process.env.REQUESTS ?? 300)
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16)
const TOKENS = Number(process.env.TOKENS ?? 200)
// no wrk here: the client is undici, so the stream's events can be counted
const rig = makeRig('frontdoor', { needWrk: false })

const CASES = { 'pass-through (openai)': 'gpt-4o-mini', 'translated (gemini)': 'gemini-2.5-flash', 'translated (anthropic)': 'claude-3-5-haiku' }

await withRig(rig, async () => {
  const stub = await startStub(rig.load)
  const target = `["http://127.0.0.1:${stub.port}"]`
  const proxy = await startLeaky(rig, `${yamlHead()}upstreams:
  openai: { provider: openai, targets: ${target}, pool: { connections: ${CONCURRENCY} } }
  gemini: { provider: gemini, targets: ${target}, pool: { connections: ${CONCURRENCY} } }
  anthropic: { provider: anthropic, targets: ${target}, pool: { connections: ${CONCURRENCY} } }
routes:
  - path: /v1/
    upstream: openai
    models: { gpt-4o-mini: openai, "gemini-*": gemini, "claude-*": anthropic }
`)
  const url = `${proxy.url}/v1/chat/completions`
  const agent = new Agent({ connections: CONCURRENCY })

  async function one(model) {
    const r = await request(url, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json', 'x-stub-tokens': String(TOKENS) },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: TOKENS, stream: true, stream_options: { include_usage: true } }),
    })
    const text = await r.body.text()
    if (r.statusCode !== 200) throw new Error(`${model}: ${r.statusCode} ${text.slice(0, 200)}`)
    let events = 0
    for (let i = text.indexOf('data:'); i >= 0; i = text.indexOf('data:', i + 5)) events++
    return events
  }

  async function batch(model, n) {
    let next = 0
    let events = 0
    const worker = async () => {
      while (next < n) {
        next++
        events += await one(model)
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    return events
  }

  const totals = Object.fromEntries(Object.keys(CASES).map((k) => [k, { cpu: 0, req: 0, events: 0, ms: 0 }]))
  for (const model of Object.values(CASES)) await batch(model, 50) // warm-up: JIT, pools
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [name, model] of Object.entries(CASES)) {
      const c0 = cpuSeconds(proxy.proc.pid)
      const t0 = performance.now()
      const events = await batch(model, REQUESTS)
      const ms = performance.now() - t0
      const cpu = cpuSeconds(proxy.proc.pid) - c0
      Object.assign(totals[name], { cpu: totals[name].cpu + cpu, req: totals[name].req + REQUESTS, events: totals[name].events + events, ms: totals[name].ms + ms })
      console.log(`round ${r} ${name.padEnd(24)} ${((cpu / REQUESTS) * 1e6).toFixed(0).padStart(6)} µs CPU/req  ${((cpu / events) * 1e6).toFixed(2).padStart(6)} µs CPU/event  (${(events / REQUESTS).toFixed(0)} events/req)`)
    }
  }
  console.log('\ntotal over rounds:')
  const base = totals['pass-through (openai)']
  for (const [name, t] of Object.entries(totals)) {
    const perReq = (t.cpu / t.req) * 1e6
    console.log(`${name.padEnd(24)} ${perReq.toFixed(0).padStart(6)} µs CPU/req  ${((t.cpu / t.events) * 1e6).toFixed(2).padStart(6)} µs CPU/event  ×${(perReq / ((base.cpu / base.req) * 1e6)).toFixed(2)}  ${(t.req / (t.ms / 1000)).toFixed(0)} req/s`)
  }
  await agent.close()
})
