import t from 'tap'
import { SseSplitter } from '../../src/llm/sse.js'

// every line end SSE allows, a comment, an event with two data lines, a field without a colon, UTF-8 across bytes
const EVENTS = [
  'data: {"a":1}\n\n',
  ': keep-alive\n\n',
  'id:7\nevent:result\n:HTTP_STATUS/200\ndata:{"b":"ü€𝄞"}\r\n\r\n',
  'data: line one\ndata:  line two\r\rdata\n\n',
  'event: ping\n\n',
  'data: [DONE]\r\n\r\n',
]
const DATA = ['{"a":1}', null, '{"b":"ü€𝄞"}', 'line one\n line two', '', null, '[DONE]']
const RAW = ['data: {"a":1}\n\n', ': keep-alive\n\n', EVENTS[2], 'data: line one\ndata:  line two\r\r', 'data\n\n', 'event: ping\n\n', 'data: [DONE]\r\n\r\n']
const WIRE = Buffer.from(EVENTS.join(''))

/** Feed the pieces; collect raw events and data; held bytes never exceed one event. */
function run(pieces: Buffer[], max?: number): { raws: Buffer[]; data: (string | null)[]; maxHeld: number; sp: SseSplitter } {
  const sp = new SseSplitter(max)
  const raws: Buffer[] = []
  const data: (string | null)[] = []
  let maxHeld = 0
  for (const p of pieces) {
    sp.push(p)
    while (sp.next()) {
      raws.push(Buffer.from(sp.raw()))
      data.push(sp.data())
    }
    maxHeld = Math.max(maxHeld, sp.held)
  }
  if (sp.finish()) {
    raws.push(Buffer.from(sp.raw()))
    data.push(sp.data())
  }
  return { raws, data, maxHeld, sp }
}

t.test('whole input: each event, its raw bytes and its data', async (t) => {
  const r = run([WIRE])
  t.same(r.raws.map((b) => b.toString()), RAW)
  t.same(r.data, DATA)
})

t.test('every split point reassembles byte-exact with the same events', async (t) => {
  const longest = Math.max(...RAW.map((r) => Buffer.byteLength(r)))
  for (let i = 0; i <= WIRE.length; i++) {
    const r = run([WIRE.subarray(0, i), WIRE.subarray(i)])
    if (!Buffer.concat(r.raws).equals(WIRE)) t.fail(`split at ${i}: bytes differ`)
    t.same(r.data, DATA, `split at ${i}`)
    if (r.maxHeld > longest) t.fail(`split at ${i}: held ${r.maxHeld} bytes`)
  }
})

t.test('every pair of split points (three pieces)', async (t) => {
  let bad = 0
  for (let i = 0; i <= WIRE.length; i++) {
    for (let j = i; j <= WIRE.length; j++) {
      const r = run([WIRE.subarray(0, i), WIRE.subarray(i, j), WIRE.subarray(j)])
      if (!Buffer.concat(r.raws).equals(WIRE) || JSON.stringify(r.data) !== JSON.stringify(DATA)) bad++
    }
  }
  t.equal(bad, 0)
})

// the same events with LF line ends only: the splitter jumps between line ends natively there (no CR in its buffer)
const WIRE_LF = Buffer.from(EVENTS.join('').replace(/\r\n|\r/g, '\n'))

t.test('LF-only: every split point and every pair of split points give the same events and data', async (t) => {
  const whole = run([WIRE_LF])
  t.same(whole.data, DATA)
  t.same(whole.raws.map((b) => b.toString()).join(''), WIRE_LF.toString())
  let bad = 0
  for (let i = 0; i <= WIRE_LF.length; i++) {
    for (let j = i; j <= WIRE_LF.length; j++) {
      const r = run([WIRE_LF.subarray(0, i), WIRE_LF.subarray(i, j), WIRE_LF.subarray(j)])
      if (!Buffer.concat(r.raws).equals(WIRE_LF) || JSON.stringify(r.data) !== JSON.stringify(DATA)) bad++
    }
  }
  t.equal(bad, 0)
})

t.test('one byte at a time', async (t) => {
  const pieces: Buffer[] = []
  for (let i = 0; i < WIRE.length; i++) pieces.push(WIRE.subarray(i, i + 1))
  const r = run(pieces)
  t.same(r.raws.map((b) => b.toString()), RAW)
  t.same(r.data, DATA)
})

t.test('a CR at the end of a chunk waits to learn whether an LF follows', async (t) => {
  const sp = new SseSplitter()
  sp.push(Buffer.from('data: x\r\n\r'))
  t.notOk(sp.next(), 'not complete before the LF is known')
  sp.push(Buffer.from('\ndata: y\n\n'))
  t.ok(sp.next())
  t.equal(sp.raw().toString(), 'data: x\r\n\r\n')
  t.ok(sp.next())
  t.equal(sp.data(), 'y')
})

t.test('an event over the cap makes the splitter give up and pass everything through', async (t) => {
  const big = 'data: ' + 'x'.repeat(200) + '\n\n'
  const wire = Buffer.from('data: 1\n\n' + big + 'data: 2\n\n')
  const r = run([wire.subarray(0, 50), wire.subarray(50, 120), wire.subarray(120)], 64)
  t.equal(r.data[0], '1')
  t.equal(r.raws.length, 1, 'no event parsed after the overflow')
  t.ok(r.sp.overflowed)
  t.ok(r.maxHeld <= 64 + 70, 'held at most the cap plus one chunk')
  t.equal(r.sp.held, 0, 'nothing held after giving up')
})
