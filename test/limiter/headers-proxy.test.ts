// The rate-limit headers over a real proxy (issue #13, item 7): with the shipped limits (ip-rps 20/s burst 40, ip-tpm
// 100k/min) and with a token limit that denies, every response of a limited route — 200 and 429 — carries both
// x-ratelimit families, remaining never exceeds limit, and RateLimit's r never exceeds RateLimit-Policy's q.
import t from 'tap'
import { request, Agent } from 'undici'
import { startProxy, baseConfig } from '../helpers/proxy.js'

const proxy = await startProxy(baseConfig(`limits:
  ip-rps: { per: ip, requests: 20/s, burst: 40 }
  ip-tpm: { per: ip, tokens: 100k/min }
  few-rps: { per: ip, requests: 100/hour, burst: 100 }
  few-tokens: { per: ip, tokens: 1000/hour, burst: 300 }
upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub, auth: none, limits: [ip-rps, ip-tpm] }
  - { path: /few/, upstream: stub, strip_prefix: true, auth: none, limits: [few-rps, few-tokens] }
`))
const agent = new Agent({ connections: 8 })
t.teardown(async () => {
  await agent.close()
  await proxy.stop()
})

interface Answer {
  status: number
  h: Record<string, string>
}

async function send(path: string, body: unknown = null): Promise<Answer> {
  const r = await request(proxy.url(path), body === null
    ? { dispatcher: agent }
    : { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  await r.body.dump()
  const h: Record<string, string> = {}
  for (const [k, v] of Object.entries(r.headers)) if (typeof v === 'string') h[k] = v
  return { status: r.statusCode, h }
}

const chat = (maxTokens: number) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens })

/** What is wrong with one response's rate-limit headers (empty: nothing). */
function problems(a: Answer, label: string): string[] {
  const out: string[] = []
  for (const unit of ['requests', 'tokens']) {
    const limit = a.h[`x-ratelimit-limit-${unit}`]
    const remaining = a.h[`x-ratelimit-remaining-${unit}`]
    if (limit === undefined || remaining === undefined || a.h[`x-ratelimit-reset-${unit}`] === undefined) {
      out.push(`${label} (${a.status}): no x-ratelimit-*-${unit}`)
    } else if (Number(remaining) > Number(limit)) {
      out.push(`${label} (${a.status}): remaining-${unit} ${remaining} > limit ${limit}`)
    }
  }
  const r = /;r=(\d+);t=\d+$/.exec(a.h.ratelimit ?? '')
  const q = /;q=(\d+);w=\d+$/.exec(a.h['ratelimit-policy'] ?? '')
  if (r === null || q === null) out.push(`${label} (${a.status}): RateLimit "${a.h.ratelimit}" / RateLimit-Policy "${a.h['ratelimit-policy']}"`)
  else if (Number(r[1]) > Number(q[1])) out.push(`${label} (${a.status}): r ${r[1]} > q ${q[1]}`)
  return out
}

t.test('the shipped limits: limit is the burst, on 200s and on the requests limit\'s 429s', async (t) => {
  const first = await send('/v1/chat/completions', chat(10))
  t.equal(first.status, 200)
  t.equal(first.h['x-ratelimit-limit-requests'], '40', 'the burst, not the rate (20/s)')
  t.equal(first.h['x-ratelimit-remaining-requests'], '39')
  t.equal(first.h['x-ratelimit-limit-tokens'], '100000')
  t.match(first.h['ratelimit-policy'], /^"ip-(rps|tpm)";q=(40;w=2|100000;w=60)$/)
  // more than the burst at once: the tail is denied by ip-rps
  const answers = await Promise.all(Array.from({ length: 50 }, () => send('/v1/chat/completions', chat(10))))
  const denied = answers.filter((a) => a.status === 429)
  t.ok(denied.length > 0, `${denied.length} of 50 denied`)
  t.ok(answers.some((a) => a.status === 200))
  t.same(answers.flatMap((a, i) => problems(a, `request ${i}`)), [])
  const d = denied[0]
  t.equal(d.h['ratelimit-policy'], '"ip-rps";q=40;w=2', 'the deciding limit')
  t.match(d.h.ratelimit, /^"ip-rps";r=0;t=\d+$/)
  t.equal(d.h['x-ratelimit-remaining-requests'], '0')
  t.equal(d.h['x-ratelimit-limit-tokens'], '100000', 'the tokens family is on the 429 too')
})

t.test('a GET (no token estimate) on a route with a token limit still reports the tokens family', async (t) => {
  const a = await send('/few/v1/models')
  t.equal(a.status, 200)
  t.same(problems(a, 'GET'), [])
  t.equal(a.h['x-ratelimit-limit-tokens'], '300')
  t.equal(a.h['x-ratelimit-remaining-tokens'], '300', 'read, not charged')
})

t.test('a token limit\'s 429s carry the requests family, within limits', async (t) => {
  const answers: Answer[] = []
  // each chat is estimated at ~100 tokens of a 300-token burst: the fourth cannot fit
  for (let i = 0; i < 5; i++) answers.push(await send('/few/v1/chat/completions', chat(90)))
  const denied = answers.filter((a) => a.status === 429)
  t.ok(denied.length >= 2, `${denied.length} of 5 denied by few-tokens`)
  t.same(answers.flatMap((a, i) => problems(a, `chat ${i}`)), [])
  const d = denied[0]
  t.equal(d.h['ratelimit-policy'], '"few-tokens";q=300;w=1080')
  t.equal(d.h['x-ratelimit-limit-requests'], '100')
  const admitted = answers.filter((a) => a.status === 200).length
  t.equal(d.h['x-ratelimit-remaining-requests'], String(100 - admitted - 1),
    'every admitted request counted, the denied ones refunded (the GET above is the -1)')
})
