// The bucket snapshot format: what a generation hands to the next one on upgrade and what the state file holds. The
// reader validates everything before a single record is used and reports a problem as a code (never throws), so a
// bad state file costs a warning and an empty table, not a crash loop.
//
// Format version 1, little-endian:
//   0  magic "LEAKYSNP" (8 bytes)      8  u16 format version (1)     10 u16 time unit (1 = ns since the Unix epoch)
//   12 u32 capacity of the source      16 i64 taken at (time unit)   24 u64 total byte length, CRC included
//   32 u32 record count                36 u32 reserved (0)
//   40 records: i64 TAT, u16 key length code, key bytes (code & 0xff of them)
//   end: u32 CRC-32 of every byte before it
// Bump SNAPSHOT_VERSION on any change; an older or newer version is rejected (SNAPSHOT_BAD_VERSION).
import { crc32 } from 'node:zlib'
import { DIGEST_FLAG, KEY_MAX } from './key.js'

export const SNAPSHOT_MAGIC = 'LEAKYSNP'
export const SNAPSHOT_VERSION = 1
export const TIME_UNIT_NS = 1
const HEADER = 40
const RECORD_FIXED = 10

export type SnapshotError =
  | 'SNAPSHOT_TRUNCATED' // shorter than its header says (or than a header)
  | 'SNAPSHOT_BAD_MAGIC' // not a leaky-tokens snapshot
  | 'SNAPSHOT_BAD_VERSION' // written by an incompatible format version
  | 'SNAPSHOT_BAD_UNIT' // time unit this build does not know
  | 'SNAPSHOT_CORRUPT' // checksum or record structure wrong

/** Appends records into a growing buffer; `finish()` fills the header and checksum. */
export class SnapshotWriter {
  private buf: Buffer
  private len = HEADER
  private last = HEADER
  private count = 0

  constructor(capacity: number, takenAt: bigint, sizeHint = 4096) {
    this.buf = Buffer.alloc(Math.max(HEADER + 4, sizeHint))
    this.buf.write(SNAPSHOT_MAGIC, 0, 'latin1')
    this.buf.writeUInt16LE(SNAPSHOT_VERSION, 8)
    this.buf.writeUInt16LE(TIME_UNIT_NS, 10)
    this.buf.writeUInt32LE(capacity, 12)
    this.buf.writeBigInt64LE(takenAt, 16)
  }

  add(tat: bigint, code: number, src: Uint8Array, offset: number): void {
    const n = code & 0xff
    this.reserve(RECORD_FIXED + n)
    this.last = this.len
    this.buf.writeBigInt64LE(tat, this.len)
    this.buf.writeUInt16LE(code, this.len + 8)
    this.buf.set(src.subarray(offset, offset + n), this.len + RECORD_FIXED)
    this.len += RECORD_FIXED + n
    this.count++
  }

  /** Take back the last add() (its source changed while it was copied). */
  drop(): void {
    this.len = this.last
    this.count--
  }

  finish(): Uint8Array {
    this.reserve(4)
    const total = this.len + 4
    this.buf.writeBigUInt64LE(BigInt(total), 24)
    this.buf.writeUInt32LE(this.count, 32)
    this.buf.writeUInt32LE(crc32(this.buf.subarray(0, this.len)), this.len)
    return this.buf.subarray(0, total)
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n))
    this.buf.copy(next, 0, 0, this.len)
    this.buf = next
  }
}

/** A validated snapshot; walk its records with next(). */
export class SnapshotReader {
  readonly capacity: number
  readonly takenAt: bigint
  readonly count: number
  /** current record (after next() returned true): its TAT, key length code and key bytes at bytes[offset] */
  tat = 0n
  code = 0
  offset = 0
  readonly bytes: Buffer
  private pos = HEADER
  private readonly end: number

  private constructor(b: Buffer, end: number) {
    this.bytes = b
    this.end = end
    this.capacity = b.readUInt32LE(12)
    this.takenAt = b.readBigInt64LE(16)
    this.count = b.readUInt32LE(32)
  }

  /** Validate header, length, checksum and every record's structure; a reader, or why not. */
  static open(data: Uint8Array): SnapshotReader | SnapshotError {
    const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    if (b.length < 8 || b.toString('latin1', 0, 8) !== SNAPSHOT_MAGIC) {
      return b.length < 8 && SNAPSHOT_MAGIC.startsWith(b.toString('latin1')) ? 'SNAPSHOT_TRUNCATED' : 'SNAPSHOT_BAD_MAGIC'
    }
    if (b.length < 10) return 'SNAPSHOT_TRUNCATED'
    if (b.readUInt16LE(8) !== SNAPSHOT_VERSION) return 'SNAPSHOT_BAD_VERSION'
    if (b.length < HEADER + 4) return 'SNAPSHOT_TRUNCATED'
    if (b.readUInt16LE(10) !== TIME_UNIT_NS) return 'SNAPSHOT_BAD_UNIT'
    const total = b.readBigUInt64LE(24)
    if (total > BigInt(b.length)) return 'SNAPSHOT_TRUNCATED'
    if (total < BigInt(HEADER + 4)) return 'SNAPSHOT_CORRUPT'
    const end = Number(total) - 4
    if (crc32(b.subarray(0, end)) !== b.readUInt32LE(end)) return 'SNAPSHOT_CORRUPT'
    const r = new SnapshotReader(b, end)
    let pos = HEADER
    for (let i = 0; i < r.count; i++) {
      if (pos + RECORD_FIXED > end) return 'SNAPSHOT_CORRUPT'
      const code = b.readUInt16LE(pos + 8)
      if (!validCode(code)) return 'SNAPSHOT_CORRUPT'
      pos += RECORD_FIXED + (code & 0xff)
    }
    return pos === end ? r : 'SNAPSHOT_CORRUPT'
  }

  next(): boolean {
    if (this.pos >= this.end) return false
    this.tat = this.bytes.readBigInt64LE(this.pos)
    this.code = this.bytes.readUInt16LE(this.pos + 8)
    this.offset = this.pos + RECORD_FIXED
    this.pos = this.offset + (this.code & 0xff)
    return true
  }
}

function validCode(code: number): boolean {
  return code === (DIGEST_FLAG | 32) || (code >= 0 && code <= KEY_MAX)
}
