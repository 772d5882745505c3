// Stage 6 — admit, after accept and route, on a real uWS app: the global in-flight gate. With server.max_inflight 2
// and two requests held open, the third is shed with 503 + Retry-After; once one ends (account gives its slot
// back) the next is admitted.
import t from 'tap'
import { stageHarness, stageConfig, Next, type RequestState } from '../../helpers/stage.js'
import { accept } from '../../../src/server/stages/accept.js'
import { route } from '../../../src/server/stages/route.js'
import { admit } from '../../../src/server/stages/admit.js'
import { ctx } from '../../../src/server/context.js'

const held: Array<{ s: RequestState; done: (s: RequestState) => void }> = []
let arrived: (() => void) | null = null
const h = await stageHarness(t, stageConfig(`server: { max_inflight: 2 }
upstreams: { up: { targets: ["http://127.0.0.1:9"] } }
routes: [{ path: /, upstream: up }]
`), (s, req, done) => {
  if (accept(s, req) !== Next.CONTINUE || route(s) !== Next.CONTINUE) return Next.REPLIED
  const n = admit(s)
  if (n !== Next.CONTINUE || s.url !== '/hold') return n
  // admitted and kept in flight until the test lets it go
  held.push({ s, done })
  arrived?.()
  return Next.PENDING
})

function hold(): { reply: Promise<Awaited<ReturnType<typeof h.send>>>; admitted: Promise<void> } {
  const admitted = new Promise<void>((resolve) => (arrived = resolve))
  return { reply: h.send('/hold'), admitted }
}

t.test('two in flight fill the gate; the third is shed; a slot given back admits the next', async (t) => {
  const a = hold()
  await a.admitted
  const b = hold()
  await b.admitted
  t.equal(Atomics.load(ctx.inflight, 0), 2, 'both hold a slot')
  const shed = await h.send('/x')
  t.equal(shed.status, 503)
  t.equal(JSON.parse(shed.text).error.code, 'LEAKY_OVERLOADED')
  t.equal(shed.headers['retry-after'], '1')
  t.equal(Atomics.load(ctx.inflight, 0), 2, 'a shed request takes no slot')
  const first = held.shift()!
  first.done(first.s)
  t.equal((await a.reply).status, 200)
  t.equal(Atomics.load(ctx.inflight, 0), 1, 'account gave the slot back')
  const next = await h.send('/x')
  t.equal(next.status, 200)
  t.equal(next.view.inflightTaken, true)
  const second = held.shift()!
  second.done(second.s)
  t.equal((await b.reply).status, 200)
  t.equal(Atomics.load(ctx.inflight, 0), 0)
})
