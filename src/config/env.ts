// `${env:NAME}`, `${env:NAME:-default}` and `${file:PATH}` inside string values, so secrets and per-host settings
// stay out of the file. An empty variable counts as unset (as in the shell's `:-`): an empty API key is a mistake,
// not a choice; `${env:NAME:-}` allows empty on purpose. `${file:PATH}` is the file's content without its trailing
// newline (Docker/Kubernetes secrets, systemd credentials); a relative PATH is relative to the config file's
// directory, and a file that is missing, unreadable or empty is an error naming it. Files are read again on every
// load, so a reload picks up a rotated secret. `$${env:NAME}` / `$${file:PATH}` are the literal text.
import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'

export type Interpolated = { ok: true; value: string; changed: boolean } | { ok: false; message: string }

const REF_RE = /(\$?)\$\{(env|file):([^}]*)\}/g
const NAME_RE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s
/** A secret is a key, a token or a PEM block; a large file behind ${file:} is a wrong path. */
const MAX_FILE_BYTES = 64 * 1024

/** `dir` resolves relative ${file:} paths: the config file's directory. */
export function interpolateEnv(text: string, env: NodeJS.ProcessEnv, dir: string = process.cwd()): Interpolated {
  if (!text.includes('${env:') && !text.includes('${file:')) return { ok: true, value: text, changed: false }
  const missing: string[] = []
  let malformed: string | undefined
  let fileError: string | undefined
  const value = text.replace(REF_RE, (whole: string, escape: string, kind: string, inner: string) => {
    if (escape === '$') return whole.slice(1)
    if (kind === 'file') {
      const r = readSecretFile(inner, dir)
      if (r.ok) return r.value
      fileError ??= r.message
      return ''
    }
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
  if (fileError !== undefined) return { ok: false, message: fileError }
  return { ok: true, value, changed: true }
}

function readSecretFile(ref: string, dir: string): { ok: true; value: string } | { ok: false; message: string } {
  if (ref.trim() === '') return { ok: false, message: 'malformed file reference ${file:}: write ${file:/path/to/secret}' }
  const file = path.resolve(dir, ref)
  const where = `\${file:${ref}}${file !== ref ? ` (${file})` : ''}`
  try {
    const st = statSync(file)
    if (st.isDirectory()) return { ok: false, message: `cannot read ${where}: is a directory` }
    if (st.size > MAX_FILE_BYTES) return { ok: false, message: `cannot read ${where}: ${st.size} bytes, more than a secret can be (64 KB)` }
    // the value is the file's text; one trailing newline (or several) is what editors and `echo` add, not the secret
    const v = readFileSync(file, 'utf8').replace(/[\r\n]+$/, '')
    if (v === '') return { ok: false, message: `${where} is empty` }
    return { ok: true, value: v }
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'ENOTDIR' ? 'a parent is not a directory' : e.message
    return { ok: false, message: `cannot read ${where}: ${why}` }
  }
}
