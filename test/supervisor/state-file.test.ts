// The state file envelope and its atomic write: round trip; every kind of damage is reported (never thrown) and
// the damaged file is moved aside; a write leaves no temp file and replaces the old content whole.
import t from 'tap'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
// its temp dirs are in this file's scratch directory, removed when its tests end
import '../helpers/scratch.js'
import { decodeState, encodeState, loadStateFile, writeStateFile, STATE_FILE_VERSION } from '../../src/supervisor/state-file.js'

const snap = { taken_at_ms: 1_780_000_000_123, bytes: new Uint8Array(Array.from({ length: 1000 }, (_, i) => i % 251)) }

function dir(): string {
  return mkdtempSync(path.join(tmpdir(), 'leaky-state-'))
}

t.test('encode → decode round trip', async (t) => {
  const r = decodeState(encodeState(snap))
  t.ok(r.ok)
  if (!r.ok) return
  t.equal(r.snapshot.taken_at_ms, snap.taken_at_ms)
  t.same(Buffer.from(r.snapshot.bytes), Buffer.from(snap.bytes))
})

t.test('damage is reported with a reason, never thrown', async (t) => {
  const good = encodeState(snap)
  const flip = Buffer.from(good)
  flip[good.length - 10] ^= 0x40
  const version = Buffer.from(good)
  version.writeUInt16LE(STATE_FILE_VERSION + 1, 8)
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty', new Uint8Array(0), /too short/],
    ['not ours', Buffer.from('{"json": "perhaps"}'.padEnd(64)), /bad magic/],
    ['truncated', good.subarray(0, good.length - 1), /truncated/],
    ['one bit flipped in the payload', flip, /checksum/],
    ['a newer version', version, /version/],
  ]
  for (const [name, buf, reason] of cases) {
    const r = decodeState(buf)
    t.notOk(r.ok, name)
    if (!r.ok) t.match(r.reason, reason, name)
  }
})

t.test('write is atomic: no temp file left, content replaced whole', async (t) => {
  const d = dir()
  const file = path.join(d, 'buckets.snap')
  writeFileSync(file, 'old content')
  await writeStateFile(file, snap)
  t.same(readdirSync(d), ['buckets.snap'], 'only the state file')
  const r = decodeState(readFileSync(file))
  t.ok(r.ok)
  const again = { taken_at_ms: snap.taken_at_ms + 1, bytes: new Uint8Array([1, 2, 3]) }
  await writeStateFile(file, again)
  const r2 = await loadStateFile(file)
  t.equal(r2.kind, 'loaded')
  if (r2.kind === 'loaded') t.same([...r2.snapshot.bytes], [1, 2, 3])
})

t.test('a missing file is "missing"; a corrupt one is moved aside with its reason', async (t) => {
  const d = dir()
  const file = path.join(d, 'buckets.snap')
  t.same(await loadStateFile(file), { kind: 'missing' })
  writeFileSync(file, 'garbage that is long enough to have a header, but not ours at all')
  const r = await loadStateFile(file)
  t.equal(r.kind, 'moved-aside')
  if (r.kind !== 'moved-aside') return
  t.match(r.reason, /bad magic/)
  t.notOk(existsSync(file), 'the bad file is no longer where start-up reads it')
  t.ok(r.aside !== null && existsSync(r.aside), 'kept beside it for inspection')
  t.match(path.basename(r.aside!), /^buckets\.snap\.bad-/)
})

t.test('a write into a missing directory fails loudly (the caller logs it) and leaves nothing behind', async (t) => {
  const file = path.join(dir(), 'no-such-dir', 'buckets.snap')
  await t.rejects(writeStateFile(file, snap), { code: 'ENOENT' })
})
