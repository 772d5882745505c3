// The decoder behind compressed answers (src/server/content-coding.ts), fed by hand: every coding it decodes, split
// at every byte of its first few reads (a zlib header arriving one byte at a time included), and what it reports
// for an empty, truncated or corrupt body. The proxy around it is test/e2e/compression.test.ts.
import t from 'tap'
import zlib from 'node:zlib'
import { ContentDecoder, codingOf, type Coding } from '../../src/server/content-coding.js'

interface Outcome {
  out: Buffer
  ended: boolean
  failed: string
}

/** Feed `pieces` then end; resolves with what the sink got once it ended or failed (exactly one of them). */
function decode(coding: Coding, pieces: Buffer[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = []
    let settled = 0
    const settle = (o: Omit<Outcome, 'out'>) => {
      if (++settled > 1) return reject(new Error('the sink heard the end twice'))
      // a second callback would arrive on a later tick: wait one before resolving
      setImmediate(() => resolve({ out: Buffer.concat(got), ...o }))
    }
    const d = new ContentDecoder(coding, {
      decoded: (b) => got.push(b),
      decodeEnded: () => settle({ ended: true, failed: '' }),
      decodeFailed: (e) => settle({ ended: false, failed: e.message }),
      drained: () => {},
    })
    for (const p of pieces) d.write(p)
    d.end()
  })
}

const plain = Buffer.from('data: {"choices":[{"delta":{"content":"leaky bucket "}}]}\n\n'.repeat(40))
/** Everything a truncated body decodes to: zlib's one-shot decoders stop at the cut instead of failing. */
function prefixOf(coding: Coding, name: string, cut: Buffer): Buffer {
  const sync = { finishFlush: zlib.constants.Z_SYNC_FLUSH }
  if (coding === 'gzip') return zlib.gunzipSync(cut, sync)
  if (coding === 'br') return zlib.brotliDecompressSync(cut, { finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH })
  return name.includes('raw') ? zlib.inflateRawSync(cut, sync) : zlib.inflateSync(cut, sync)
}

const ENCODE: Record<string, [Coding, (b: Buffer) => Buffer]> = {
  gzip: ['gzip', (b) => zlib.gzipSync(b)],
  'deflate (zlib)': ['deflate', (b) => zlib.deflateSync(b)],
  'deflate (raw)': ['deflate', (b) => zlib.deflateRawSync(b)],
  br: ['br', (b) => zlib.brotliCompressSync(b)],
}

t.test('every coding decodes, however its first bytes are split', async (t) => {
  for (const [name, [coding, enc]] of Object.entries(ENCODE)) {
    const z = enc(plain)
    for (const at of [1, 2, 3, 7, z.length - 1]) {
      const o = await decode(coding, [z.subarray(0, at), z.subarray(at)])
      t.ok(o.ended && o.out.equals(plain), `${name} split after ${at} byte(s)`)
    }
    // one byte per read for the first four
    const o = await decode(coding, [z.subarray(0, 1), z.subarray(1, 2), Buffer.alloc(0), z.subarray(2, 3), z.subarray(3, 4), z.subarray(4)])
    t.ok(o.ended && o.out.equals(plain), `${name} a byte at a time, an empty read among them`)
  }
})

t.test('an empty body ends at once; a one-byte deflate body fails', async (t) => {
  for (const coding of ['gzip', 'deflate', 'br'] as const) t.same(await decode(coding, []), { out: Buffer.alloc(0), ended: true, failed: '' }, coding)
  const o = await decode('deflate', [Buffer.from([0x78])])
  t.equal(o.ended, false)
  t.not(o.failed, '', `failed: ${o.failed}`)
})

t.test('truncated or corrupt: what decoded, then one failure', async (t) => {
  for (const [name, [coding, enc]] of Object.entries(ENCODE)) {
    const z = enc(plain)
    const cut = await decode(coding, [z.subarray(0, Math.floor(z.length * 0.6))])
    t.equal(cut.ended, false, `${name} truncated: no clean end`)
    t.not(cut.failed, '', `${name} truncated: ${cut.failed}`)
    t.ok(plain.subarray(0, cut.out.length).equals(cut.out), `${name} truncated: ${cut.out.length} bytes decoded are the body's start`)
    t.equal(cut.out.length, prefixOf(coding, name, z.subarray(0, Math.floor(z.length * 0.6))).length, `${name} truncated: all of what decodes`)
    const bad = await decode(coding, [Buffer.from('\xff\xff this is no compressed stream at all', 'latin1')])
    t.not(bad.failed, '', `${name} garbage: ${bad.failed}`)
  }
})

t.test('truncated, its last piece arriving with the end: what that piece decodes is not lost with the failure', async (t) => {
  const text = Buffer.from(Array.from({ length: 600 }, (_, i) => 'w' + ((i * 7919) % 10007)).join(' '))
  for (const [name, [coding, enc]] of Object.entries(ENCODE)) {
    const z = enc(text)
    const cut = z.subarray(0, Math.floor(z.length * 0.6))
    const want = prefixOf(coding, name, cut)
    t.ok(want.length > 500, `${name}: ${want.length} bytes decode from the truncated body`)
    // two pieces then the end, in one tick: as undici hands over a body's last read and its end together
    const o = await decode(coding, [cut.subarray(0, cut.length >> 1), cut.subarray(cut.length >> 1)])
    t.not(o.failed, '', `${name}: failed (${o.failed})`)
    t.ok(o.out.equals(want), `${name}: ${o.out.length} of ${want.length} decodable bytes delivered`)
  }
})

t.test('truncated while the client was slow: what zlib decoded but held is still delivered before the failure', async (t) => {
  // text that compresses poorly: a truncated stream of it still decodes to hundreds of bytes
  const text = Buffer.from(Array.from({ length: 600 }, (_, i) => 'w' + ((i * 7919) % 10007)).join(' '))
  for (const [name, [coding, enc]] of Object.entries(ENCODE)) {
    const z = enc(text)
    const cut = z.subarray(0, Math.floor(z.length * 0.6))
    const half = cut.length >> 1
    const whole = { out: prefixOf(coding, name, cut) }
    // the sink pauses the decoder at its first bytes, as the stream stage does when the client's socket is full,
    // and the rest of the truncated body arrives meanwhile
    const o = await new Promise<Outcome>((resolve) => {
      const got: Buffer[] = []
      const d: ContentDecoder = new ContentDecoder(coding, {
        decoded: (b) => {
          got.push(b)
          d.pause()
        },
        decodeEnded: () => resolve({ out: Buffer.concat(got), ended: true, failed: '' }),
        decodeFailed: (e) => resolve({ out: Buffer.concat(got), ended: false, failed: e.message }),
        drained: () => {},
      })
      d.write(cut.subarray(0, half))
      setImmediate(() => {
        d.write(cut.subarray(half))
        // the end on a later read: zlib has decoded the rest by then, into its buffer, as the sink paused it
        setTimeout(() => d.end(), 20)
      })
    })
    t.not(o.failed, '', `${name}: failed (${o.failed})`)
    t.equal(o.out.length, whole.out.length, `${name}: all ${whole.out.length} decodable bytes reached the sink`)
    t.ok(whole.out.length > 500, `${name}: ${whole.out.length} bytes decode from the truncated body`)
    t.ok(text.subarray(0, o.out.length).equals(o.out), `${name}: and they are the body's start`)
  }
})

t.test('Content-Encoding values', async (t) => {
  const cases: Array<[string | string[] | undefined, string]> = [
    [undefined, 'identity'], ['', 'identity'], ['identity', 'identity'], ['gzip', 'gzip'], ['X-GZIP', 'gzip'], [' gzip ', 'gzip'],
    ['deflate', 'deflate'], ['br', 'br'], ['zstd', 'unknown'], ['compress', 'unknown'], ['gzip, br', 'unknown'], [['gzip', 'br'], 'unknown'],
  ]
  for (const [v, want] of cases) t.equal(codingOf(v), want, JSON.stringify(v))
})
