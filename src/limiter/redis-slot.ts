// Redis Cluster key slots (CLUSTER KEYSLOT): CRC16-XMODEM of the key's hash tag, or of the whole key without one,
// modulo 16384. Config validation uses it to refuse a route whose cluster limits would land in different slots: one
// script call per request cannot touch them (CROSSSLOT), so such a request could never be decided by Redis.

/** The part of `key` Redis Cluster hashes: the first non-empty {...}, else the whole key. */
export function hashTag(key: string): string {
  const open = key.indexOf('{')
  if (open < 0) return key
  const close = key.indexOf('}', open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : key
}

/** The slot of `key` (0..16383). */
export function keySlot(key: string): number {
  const bytes = Buffer.from(hashTag(key), 'utf8')
  let crc = 0
  for (let i = 0; i < bytes.length; i++) {
    crc ^= bytes[i] << 8
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc % 16384
}

/** The bucket key prefix of a limit (RedisLimiter.key without the subject): `${key_prefix}{${name}}:`. */
export function limitKeyPrefix(keyPrefix: string, name: string): string {
  return `${keyPrefix}{${name}}:`
}
