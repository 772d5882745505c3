// The bucket state file (`state_file:`): the limiter's snapshot bytes in an envelope that says when they were taken
// and carries a CRC, written atomically (temp file, fsync, rename, fsync of the directory) so a crash or power loss
// leaves either the old file or the new one, never a torn one. A file that cannot be used is moved aside with a
// reason, never a crash: the proxy then starts with empty buckets.
//
// Envelope (little endian): magic "LEAKYBKT" · u16 version · u16 0 · u32 payload length · f64 taken_at_ms (Unix
// epoch, ms) · u32 crc32(payload) · u32 0 · payload (the limiter's own versioned format).
import { open, rename, readFile, unlink } from 'node:fs/promises'
import { renameSync } from 'node:fs'
import path from 'node:path'
import { crc32 } from 'node:zlib'
import type { Snapshot } from './protocol.js'

const MAGIC = Buffer.from('LEAKYBKT', 'latin1')
export const STATE_FILE_VERSION = 1
const HEADER = 32

export function encodeState(s: Snapshot): Buffer {
  const out = Buffer.allocUnsafe(HEADER + s.bytes.length)
  MAGIC.copy(out, 0)
  out.writeUInt16LE(STATE_FILE_VERSION, 8)
  out.writeUInt16LE(0, 10)
  out.writeUInt32LE(s.bytes.length, 12)
  out.writeDoubleLE(s.taken_at_ms, 16)
  out.writeUInt32LE(crc32(s.bytes), 24)
  out.writeUInt32LE(0, 28)
  out.set(s.bytes, HEADER)
  return out
}

export type DecodeResult = { ok: true; snapshot: Snapshot } | { ok: false; reason: string }

export function decodeState(buf: Uint8Array): DecodeResult {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  if (b.length < HEADER) return { ok: false, reason: `too short (${b.length} bytes) to be a state file` }
  if (!b.subarray(0, 8).equals(MAGIC)) return { ok: false, reason: 'not a leaky state file (bad magic)' }
  const version = b.readUInt16LE(8)
  if (version !== STATE_FILE_VERSION) return { ok: false, reason: `state file version ${version}, this build reads ${STATE_FILE_VERSION}` }
  const len = b.readUInt32LE(12)
  if (b.length !== HEADER + len) return { ok: false, reason: `truncated: header says ${len} payload bytes, file has ${b.length - HEADER}` }
  const taken = b.readDoubleLE(16)
  if (!Number.isFinite(taken) || taken <= 0) return { ok: false, reason: 'bad timestamp' }
  const bytes = new Uint8Array(b.subarray(HEADER))
  if (crc32(bytes) !== b.readUInt32LE(24)) return { ok: false, reason: 'checksum mismatch (corrupt)' }
  return { ok: true, snapshot: { taken_at_ms: taken, bytes } }
}

/** Atomically replace `file` with the snapshot. */
export async function writeStateFile(file: string, s: Snapshot): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`
  const data = encodeState(s)
  const fh = await open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await rename(tmp, file)
  } catch (err) {
    await unlink(tmp).catch(() => undefined)
    throw err
  }
  // the rename is durable only once the directory entry is on disk
  const dir = await open(path.dirname(file), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

export type LoadResult =
  | { kind: 'missing' }
  | { kind: 'loaded'; snapshot: Snapshot }
  /** unusable: moved to `aside` (null if even the move failed) */
  | { kind: 'moved-aside'; reason: string; aside: string | null }

/** Read the state file; a corrupt one is moved aside and reported, so start-up goes on with empty buckets. */
export async function loadStateFile(file: string): Promise<LoadResult> {
  let buf: Buffer
  try {
    buf = await readFile(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return { kind: 'missing' }
    return { kind: 'moved-aside', reason: `cannot read: ${(err as Error).message}`, aside: null }
  }
  const r = decodeState(buf)
  if (r.ok) return { kind: 'loaded', snapshot: r.snapshot }
  return { kind: 'moved-aside', reason: r.reason, aside: moveAside(file) }
}

/** Rename an unusable state file to `<file>.bad-<time>` so it is kept for inspection but not read again. */
export function moveAside(file: string): string | null {
  const aside = `${file}.bad-${new Date().toISOString().replace(/[:.]/g, '-')}`
  try {
    renameSync(file, aside)
    return aside
  } catch {
    return null
  }
}
