// The request path as routing sees it and the upstream receives it, normalised the way Envoy and nginx do before
// matching: without this, `GET /public/../v1/echo` matches an `auth: none` route `/public/` and an upstream that
// resolves dot segments serves `/v1/echo` with the proxy's credentials and without the key `/v1/` requires.
//
// Steps (RFC 3986 §6.2.2): percent-encoded unreserved characters are decoded (`%2e` is `.`, `%7E` is `~`), other
// escapes get upper-case hex; `.` and `..` segments are removed (§5.2.4, never above the root); runs of `/` are
// merged (server.path.merge_slashes). Refused with 400, since no normal client sends them and upstreams disagree
// on what they mean: an encoded `/` or `\` (`%2F`, `%5C`; server.path.encoded_slashes: keep lets them through
// undecoded), `%00`, a bare `\`, a malformed escape, and the `..;` / `.;` segments that Java servers read as dot
// segments with a parameter.
//
// Most paths have nothing to normalise: one scan decides that, and only then is a new string built.

export interface PathPolicy {
  mergeSlashes: boolean
  /** `%2F` / `%5C` in a path: refused (false) or kept undecoded (true) */
  keepEncodedSlashes: boolean
}

const SLASH = 0x2f
const DOT = 0x2e
const PERCENT = 0x25
const BACKSLASH = 0x5c
const SEMI = 0x3b

/** The path needs the slow path: an escape, a dot segment, a double slash, a backslash or a `;` after a dot. */
function clean(p: string, merge: boolean): boolean {
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i)
    if (c === PERCENT || c === BACKSLASH) return false
    if (c === SLASH && i + 1 < p.length) {
      const n = p.charCodeAt(i + 1)
      if (n === SLASH && merge) return false
      if (n === DOT) {
        // "/." followed by "/", ".", ";" or the end is a dot segment (or its Java variant)
        const a = i + 2 < p.length ? p.charCodeAt(i + 2) : SLASH
        if (a === SLASH || a === DOT || a === SEMI) return false
      }
    }
  }
  return true
}

function unreserved(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === DOT || c === 0x5f || c === 0x7e
}

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  return -1
}

/** The normalised path, or null when the path must be refused (400). `p` starts with `/` (uWS guarantees it). */
export function normalizePath(p: string, policy: PathPolicy): string | null {
  if (clean(p, policy.mergeSlashes)) return p
  // 1. escapes: decode the unreserved ones, refuse the dangerous ones, upper-case the rest
  let decoded = ''
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i)
    if (c === BACKSLASH) return null
    if (c !== PERCENT) {
      decoded += p[i]
      continue
    }
    const h = i + 2 < p.length ? hex(p.charCodeAt(i + 1)) : -1
    const l = h >= 0 ? hex(p.charCodeAt(i + 2)) : -1
    if (l < 0) return null
    const v = h * 16 + l
    if (v === 0) return null
    if (v === SLASH || v === BACKSLASH) {
      if (!policy.keepEncodedSlashes) return null
      decoded += v === SLASH ? '%2F' : '%5C'
    } else if (unreserved(v)) {
      decoded += String.fromCharCode(v)
    } else {
      decoded += '%' + p[i + 1].toUpperCase() + p[i + 2].toUpperCase()
    }
    i += 2
  }
  // 2. segments: merge empty ones, drop ".", pop on ".."; a trailing dot segment leaves a trailing slash
  const segs = decoded.split('/')
  const out: string[] = []
  const last = segs.length - 1
  for (let i = 1; i <= last; i++) {
    const seg = segs[i]
    if (seg === '..;' || seg === '.;' || seg.startsWith('..;') || seg.startsWith('.;')) return null
    if (seg === '.' || seg === '..') {
      if (seg === '..') out.pop()
      if (i === last) out.push('')
      continue
    }
    if (seg === '' && policy.mergeSlashes && i !== last) continue
    out.push(seg)
  }
  return '/' + out.join('/')
}
