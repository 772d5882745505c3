// One problem found in a config file, pointing at the place to fix it.

export interface ConfigIssue {
  file: string
  /** 1-based; 0 when the problem is the file itself (cannot be read) */
  line: number
  /** 1-based; 0 with line 0 */
  col: number
  /** where in the config, like `routes[2].upstream` or `limits.ip-rps.per`; '' for the whole file */
  path: string
  message: string
}

const PLAIN_SEGMENT = /^[A-Za-z0-9_-]+$/

/** `routes[2].upstream`; names with dots or other punctuation are quoted: `limits["a.b"].per`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`
    else if (PLAIN_SEGMENT.test(String(seg))) out += out === '' ? String(seg) : `.${String(seg)}`
    else out += `[${JSON.stringify(String(seg))}]`
  }
  return out
}

/** `bad.yaml:12:5 routes[2].upstream: unknown upstream "opnai" (did you mean "openai"?)` */
export function formatIssue(i: ConfigIssue): string {
  if (i.line === 0) return `${i.file}: ${i.path === '' ? '' : `${i.path}: `}${i.message}`
  const where = `${i.file}:${i.line}:${i.col}`
  return i.path === '' ? `${where} ${i.message}` : `${where} ${i.path}: ${i.message}`
}
