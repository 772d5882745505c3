// `${env:NAME}` and `${env:NAME:-default}` inside string values, so secrets and per-host settings stay out of the
// file. An empty variable counts as unset (as in the shell's `:-`): an empty API key is a mistake, not a choice;
// `${env:NAME:-}` allows empty on purpose. `$${env:NAME}` is the literal text `${env:NAME}`.

export type Interpolated = { ok: true; value: string; changed: boolean } | { ok: false; message: string }

const REF_RE = /(\$?)\$\{env:([^}]*)\}/g
const NAME_RE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s

export function interpolateEnv(text: string, env: NodeJS.ProcessEnv): Interpolated {
  if (!text.includes('${env:')) return { ok: true, value: text, changed: false }
  const missing: string[] = []
  let malformed: string | undefined
  const value = text.replace(REF_RE, (whole: string, escape: string, inner: string) => {
    if (escape === '$') return whole.slice(1)
    const m = NAME_RE.exec(inner)
    if (m === null) {
      malformed ??= whole
      return ''
    }
    const v = env[m[1]]
    if (v !== undefined && v !== '') return v
    if (m[2] !== undefined) return m[2]
    missing.push(m[1])
    return ''
  })
  if (malformed !== undefined) {
    return { ok: false, message: `malformed environment reference ${malformed}: write \${env:NAME} or \${env:NAME:-default}` }
  }
  if (missing.length === 1) {
    return { ok: false, message: `environment variable ${missing[0]} is not set (give a default with \${env:${missing[0]}:-value})` }
  }
  if (missing.length > 1) return { ok: false, message: `environment variables ${missing.join(', ')} are not set` }
  return { ok: true, value, changed: true }
}
