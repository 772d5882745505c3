// Response ids and timestamps. With a seed they are drawn from the request's own PRNG so a seeded replay is
// byte-identical; without one they come from a process-wide PRNG seeded from the OS, unique like the real ones.
import { randomBytes } from 'node:crypto'
import { Rng } from './prng.js'

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const HEX = '0123456789abcdef'

/** The source of ids for unseeded requests. */
export const unseededIds = new Rng(randomBytes(4).readUInt32LE(0))

/** Unix seconds stamped on seeded responses (2025-01-01T00:00:00Z). */
export const SEEDED_CREATED = 1735689600

/** `len` base62 characters, as in OpenAI's `chatcmpl-…` ids. */
export function base62(rng: Rng, len: number): string {
  let s = ''
  for (let i = 0; i < len; i++) s += ALPHABET[rng.next() % 62]
  return s
}

/** A version-4-shaped UUID, as in DashScope's `request_id`. */
export function uuid(rng: Rng): string {
  let s = ''
  for (let i = 0; i < 32; i++) {
    if (i === 8 || i === 12 || i === 16 || i === 20) s += '-'
    s += i === 12 ? '4' : HEX[rng.next() & 15]
  }
  return s
}

/** `len` lower-case hex digits, as in the Responses API's `resp_…` / `msg_…` ids. */
export function hex(rng: Rng, len: number): string {
  let s = ''
  for (let i = 0; i < len; i++) s += HEX[rng.next() & 15]
  return s
}
