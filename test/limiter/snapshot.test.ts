import t from 'tap'
import { compileLimit } from '../../src/limiter/limit.js'
import { SNAPSHOT_VERSION, SnapshotReader } from '../../src/limiter/snapshot.js'
import { BucketTable, Status } from '../../src/limiter/table.js'

const S = 1_000_000_000n
const NOW = 1_780_000_000n * S
const rps = compileLimit({ name: 'rps', per: 'key', unit: 'requests', amount: 10, period_ms: 1000, burst: 5 })
const daily = compileLimit({ name: 'org-daily', per: 'org', unit: 'tokens', amount: 5e6, period_ms: 86_400_000, burst: 5e6 })

function populated(capacity = 4096): BucketTable {
  const table = BucketTable.create(capacity)
  for (let i = 0; i < 300; i++) table.charge(rps, `key-${i}`, (i % 5) + 1, NOW)
  for (let i = 0; i < 50; i++) table.charge(daily, `org-${i}`, 1000 * (i + 1), NOW)
  table.charge(rps, 'é'.repeat(40), 2, NOW) // a digest key (80 bytes of UTF-8)
  table.charge(rps, 'drained', 5, NOW - 10n * S)
  return table
}

function levels(table: BucketTable, now: bigint): number[] {
  const out: number[] = []
  for (let i = 0; i < 300; i++) out.push((table.peek(rps, `key-${i}`, now), table.afterNs))
  for (let i = 0; i < 50; i++) out.push((table.peek(daily, `org-${i}`, now), table.afterNs))
  out.push((table.peek(rps, 'é'.repeat(40), now), table.afterNs))
  return out
}

t.test('round trip into the same, a larger and a smaller capacity; drained buckets dropped', async (t) => {
  const src = populated()
  const snap = src.snapshot(NOW)
  const header = SnapshotReader.open(snap)
  if (typeof header === 'string') throw new Error(header)
  t.equal(header.count, 351, 'live buckets only: the drained one is not written')
  t.equal(header.capacity, 4096)
  t.equal(header.takenAt, NOW)
  const want = levels(src, NOW)
  for (const cap of [4096, 65536, 1024]) {
    const dst = BucketTable.create(cap)
    t.same(dst.restore(snap, NOW), { ok: true, restored: 351, dropped: 0, full: 0 }, `capacity ${cap}`)
    t.same(levels(dst, NOW), want, `levels equal after restore into ${cap} slots`)
  }
  // restored later: the request buckets (<= 500 ms) have drained and are dropped, the daily ones are kept
  const later = BucketTable.create(4096)
  t.same(later.restore(snap, NOW + S), { ok: true, restored: 50, dropped: 301, full: 0 })
  later.peek(daily, 'org-9', NOW + S)
  t.equal(later.afterNs, 10_000 * 17_280_000 - 1e9, '10k tokens at T = 17.28 ms, one second later')
  // restore into a table that already holds some of the keys keeps the fuller level
  const busy = BucketTable.create(4096)
  busy.charge(rps, 'key-0', 5, NOW) // fuller than the snapshot's 1
  busy.charge(rps, 'key-4', 1, NOW) // emptier than the snapshot's 5
  busy.restore(snap, NOW)
  t.equal((busy.peek(rps, 'key-0', NOW), busy.afterNs), 500_000_000)
  t.equal((busy.peek(rps, 'key-4', NOW), busy.afterNs), 500_000_000)
  // the restored table behaves: key-4 is full
  t.equal(busy.charge(rps, 'key-4', 1, NOW), Status.DENIED)
})

t.test('a restore that does not fit counts what it could not place', async (t) => {
  const snap = populated().snapshot(NOW)
  const tiny = BucketTable.create(64, 'deny_new')
  const r = tiny.restore(snap, NOW)
  if (!r.ok) throw new Error(r.error)
  t.equal(r.restored + r.full, 351)
  t.ok(r.restored <= 64 && r.full > 0, `${r.restored} restored, ${r.full} did not fit`)
})

t.test('bad buffers are rejected with an error code, never a throw', async (t) => {
  const snap = Buffer.from(populated().snapshot(NOW))
  const table = BucketTable.create(1024)
  const cases: [string, Uint8Array, string][] = [
    ['empty', new Uint8Array(0), 'SNAPSHOT_TRUNCATED'],
    ['magic only', snap.subarray(0, 8), 'SNAPSHOT_TRUNCATED'],
    ['cut in the header', snap.subarray(0, 30), 'SNAPSHOT_TRUNCATED'],
    ['cut in the records', snap.subarray(0, snap.length - 100), 'SNAPSHOT_TRUNCATED'],
    ['cut by 1 byte', snap.subarray(0, snap.length - 1), 'SNAPSHOT_TRUNCATED'],
    ['not a snapshot', Buffer.from('{"buckets": []}'.repeat(10)), 'SNAPSHOT_BAD_MAGIC'],
    ['random bytes', Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 7919) & 0xff)), 'SNAPSHOT_BAD_MAGIC'],
  ]
  const older = Buffer.from(snap)
  older.writeUInt16LE(SNAPSHOT_VERSION - 1, 8)
  cases.push(['older format version', older, 'SNAPSHOT_BAD_VERSION'])
  const newer = Buffer.from(snap)
  newer.writeUInt16LE(SNAPSHOT_VERSION + 1, 8)
  cases.push(['newer format version', newer, 'SNAPSHOT_BAD_VERSION'])
  const unit = Buffer.from(snap)
  unit.writeUInt16LE(1000, 10)
  cases.push(['unknown time unit', unit, 'SNAPSHOT_BAD_UNIT'])
  for (const at of [50, 200, snap.length - 6, snap.length - 2]) {
    const flipped = Buffer.from(snap)
    flipped[at] ^= 0x40
    cases.push([`one bit flipped at byte ${at}`, flipped, 'SNAPSHOT_CORRUPT'])
  }
  // a structurally wrong record with a correct checksum (as a buggy writer would produce)
  const { crc32 } = await import('node:zlib')
  const bad = Buffer.from(snap)
  bad.writeUInt16LE(200, 40 + 8) // first record's key length code: not a valid code
  bad.writeUInt32LE(crc32(bad.subarray(0, bad.length - 4)), bad.length - 4)
  cases.push(['invalid key length with a valid checksum', bad, 'SNAPSHOT_CORRUPT'])
  for (const [name, buf, code] of cases) {
    let r
    t.doesNotThrow(() => { r = table.restore(buf, NOW) }, name)
    t.same(r, { ok: false, error: code }, name)
  }
  t.equal(table.stats().inserted, 0, 'nothing was inserted from any bad buffer')
  t.same(table.restore(snap, NOW), { ok: true, restored: 351, dropped: 0, full: 0 }, 'the intact buffer still restores')
})

t.test('snapshot of an empty table round-trips', async (t) => {
  const snap = BucketTable.create(1024).snapshot(NOW)
  t.same(BucketTable.create(2048).restore(snap, NOW), { ok: true, restored: 0, dropped: 0, full: 0 })
})
