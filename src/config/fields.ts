// The value types config fields are built from. Each accepts what a user writes (including the strings that
// `${env:X}` interpolation produces, so `workers: ${env:W:-4}` works), and reports a failure as one issue whose
// message says what was expected; the loader adds file:line:col and the path.
import { isIPv4, isIPv6 } from 'node:net'
import * as z from 'zod'
import { parseBackoff, parseCount, parseDuration, parseRate, parseSize, type UnitResult } from './units.js'
import { didYouMean } from './suggest.js'

/** Schemas registered here hold secrets: redaction replaces their values, whatever their shape, with "***". */
export const secrets = z.registry<{ secret: true }>()

export function secret<T extends z.ZodType>(schema: T): T {
  secrets.add(schema, { secret: true })
  return schema
}

export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (Array.isArray(v)) return 'a list'
  if (v === null) return 'null'
  if (typeof v === 'object') return 'a map'
  return String(v)
}

/** A field whose value goes through `parse`: the result's message becomes the issue. */
export function parsed<T>(parse: (v: unknown) => UnitResult<T>) {
  return z.any().transform((v, ctx): T => {
    const r = parse(v)
    if (r.ok) return r.value
    ctx.addIssue({ code: 'custom', message: r.message, input: v })
    return z.NEVER
  })
}

export const duration = () => parsed(parseDuration)
export const size = () => parsed(parseSize)
export const rate = () => parsed(parseRate)
export const backoff = () => parsed(parseBackoff)

export function count(min = 0, max = Number.MAX_SAFE_INTEGER) {
  return parsed((v) => {
    const r = parseCount(v)
    if (!r.ok) return r
    if (r.value < min || r.value > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `from ${min} to ${max}`
      return { ok: false, message: `must be ${range}, got ${show(v)}` }
    }
    return r
  })
}

const INT_TEXT = /^-?\d+$/

export function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`
  return parsed((v): UnitResult<number> => {
    const n = typeof v === 'string' && INT_TEXT.test(v.trim()) ? Number(v) : v
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      return { ok: false, message: `expected an integer ${range}, got ${show(v)}` }
    }
    return { ok: true, value: n }
  })
}

/** A number > min (exclusive) and <= max. */
export function num(min: number, max = Infinity) {
  const range = max === Infinity ? `greater than ${min}` : `greater than ${min} and at most ${max}`
  return parsed((v): UnitResult<number> => {
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v
    if (typeof n !== 'number' || !Number.isFinite(n) || n <= min || n > max) {
      return { ok: false, message: `expected a number ${range}, got ${show(v)}` }
    }
    return { ok: true, value: n }
  })
}

/** A number >= 0 and <= max: amounts that may be zero (a free tier, an output price of 0 for embeddings). */
export function amount(max = Number.MAX_SAFE_INTEGER) {
  return parsed((v): UnitResult<number> => {
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > max) {
      return { ok: false, message: `expected a number from 0 to ${max}, got ${show(v)}` }
    }
    return { ok: true, value: n }
  })
}

export function bool() {
  return parsed((v): UnitResult<boolean> => {
    if (v === true || v === 'true') return { ok: true, value: true }
    if (v === false || v === 'false') return { ok: true, value: false }
    return { ok: false, message: `expected true or false, got ${show(v)}` }
  })
}

/** One of a closed set of words, with a suggestion for a near miss. */
export function oneOf<const T extends readonly string[]>(values: T) {
  return parsed((v): UnitResult<T[number]> => {
    if (typeof v === 'string' && values.includes(v)) return { ok: true, value: v as T[number] }
    const hint = typeof v === 'string' ? didYouMean(v, values) : ''
    return { ok: false, message: `expected one of ${values.join(', ')}, got ${show(v)}${hint}` }
  })
}

/** A non-empty string. */
export function text() {
  return z.string().min(1)
}

/** Names of limits, tiers and upstreams: they appear in metrics labels and Redis keys, so keep them plain. */
export const NAME_RE = /^[A-Za-z0-9_.-]{1,48}$/
export function name() {
  return z.string().regex(NAME_RE, 'names may use letters, digits, "_", "." and "-" (1 to 48 characters)')
}

const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/
const LISTEN_RE = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/

/** "host:port", "[::1]:port" or ":port" (all IPv4 interfaces) → normalised "host:port". */
export function listen() {
  return parsed((v): UnitResult<string> => {
    const m = typeof v === 'string' ? LISTEN_RE.exec(v.trim()) : null
    const bad: UnitResult<string> = { ok: false, message: `expected "host:port" (e.g. "0.0.0.0:8080", "[::1]:8080" or ":8080"), got ${show(v)}` }
    if (m === null) return bad
    const port = Number(m[3])
    if (port > 65535) return { ok: false, message: `port ${port} is above 65535` }
    if (m[1] !== undefined) return isIPv6(m[1]) ? { ok: true, value: `[${m[1]}]:${port}` } : bad
    const host = m[2] === '' ? '0.0.0.0' : m[2]
    if (!isIPv4(host) && !HOSTNAME_RE.test(host)) return bad
    return { ok: true, value: `${host}:${port}` }
  })
}

/** A hostname for route matching, lower-cased; the request's port is ignored when matching, so none is allowed. */
export function hostname() {
  return parsed((v): UnitResult<string> => {
    if (typeof v === 'string' && (HOSTNAME_RE.test(v) || isIPv4(v))) return { ok: true, value: v.toLowerCase() }
    return { ok: false, message: `expected a host name without port (e.g. "api.example.com"), got ${show(v)}` }
  })
}

/** An IPv4 or IPv6 address or CIDR block ("10.0.0.0/8", "fd00::/8", "192.0.2.7"). */
export function cidr() {
  return parsed((v): UnitResult<string> => {
    const bad: UnitResult<string> = { ok: false, message: `expected an IP address or CIDR block (e.g. "10.0.0.0/8", "fd00::/8"), got ${show(v)}` }
    if (typeof v !== 'string') return bad
    const [addr, bits, extra] = v.trim().split('/')
    if (extra !== undefined) return bad
    const v4 = isIPv4(addr)
    // embedded dotted IPv4 and zone ids cannot be matched against a peer address; say so instead of misbehaving
    if (!v4 && (!isIPv6(addr) || addr.includes('.') || addr.includes('%'))) return bad
    if (bits !== undefined) {
      const n = /^\d{1,3}$/.test(bits) ? Number(bits) : -1
      if (n < 0 || n > (v4 ? 32 : 128)) return { ok: false, message: `prefix length of ${show(v)} must be from 0 to ${v4 ? 32 : 128}` }
    }
    return { ok: true, value: v.trim() }
  })
}

/** "http(s)://host[:port][/base/path]" or "embedded" (the built-in stub upstream). */
export function target() {
  return parsed((v): UnitResult<string> => {
    const bad: UnitResult<string> = { ok: false, message: `expected "embedded" or "http(s)://host[:port][/base/path]", got ${show(v)}` }
    if (v === 'embedded') return { ok: true, value: v }
    if (typeof v !== 'string' || !URL.canParse(v)) return bad
    const u = new URL(v)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return bad
    if (u.username !== '' || u.password !== '') return { ok: false, message: 'credentials in a target URL would be logged: put them in headers instead' }
    if (u.search !== '' || u.hash !== '') return { ok: false, message: `a target has no query or fragment, got ${show(v)}` }
    return { ok: true, value: v }
  })
}

/** An HTTP header name (RFC 9110 token), lower-cased. */
export const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
