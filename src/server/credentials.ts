// The client's credentials in a request: identify reads the one it presented (virtual key or JWT), forward drops
// them all before the upstream's own are added. Here rather than in either stage, so neither imports the other.
import type { RequestState } from './request-state.js'
import { CREDENTIAL_HEADERS } from '../upstream/upstream.js'

/** The credential the client sent (virtual key or JWT), '' when none. */
export function presentedKey(s: RequestState): string {
  const h = s.headers
  for (let i = 0; i < h.length; i += 2) {
    const k = h[i]
    if (k === 'authorization') {
      const v = h[i + 1]
      return v.length > 7 && v.slice(0, 7).toLowerCase() === 'bearer ' ? v.slice(7).trim() : ''
    }
    // x-api-key: Anthropic; x-goog-api-key: Gemini; api-key: Azure OpenAI
    if (k === 'x-api-key' || k === 'x-goog-api-key' || k === 'api-key') return h[i + 1].trim()
  }
  if (s.query !== '') {
    for (const p of s.query.split('&')) if (p.startsWith('key=')) return safeDecode(p.slice(4))
  }
  return ''
}

function safeDecode(v: string): string {
  try {
    return decodeURIComponent(v)
  } catch {
    return v // a malformed escape is just an unknown key, not a crash
  }
}

/** Forward drops them once the upstream is known: whether to depends on it (own credentials, or auth: key). */
export function dropClientCredentials(s: RequestState): void {
  const h = s.headers
  let w = 0
  for (let i = 0; i < h.length; i += 2) {
    if (CREDENTIAL_HEADERS.has(h[i])) continue
    h[w++] = h[i]
    h[w++] = h[i + 1]
  }
  h.length = w
  if (s.query !== '' && s.query.includes('key=')) s.query = stripKeyParam(s.query)
}

function stripKeyParam(query: string): string {
  return query.split('&').filter((p) => !p.startsWith('key=')).join('&')
}
