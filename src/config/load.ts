// YAML text → validated Config, or every issue found, each with file:line:col. Steps: parse (syntax errors stop
// here: the tree is not trustworthy), interpolate ${env:…} and ${file:…} in string values, validate with the schema and the
// cross-section checks together, then map each issue's path back to the YAML node it came from.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml'
import type * as z from 'zod'
import { interpolateEnv } from './env.js'
import { show } from './fields.js'
import { formatPath, type ConfigIssue } from './issue.js'
import { checkRefs } from './refs.js'
import { checkTlsFiles } from './tls.js'
import { configSchema, type Config } from './schema.js'
import { didYouMean } from './suggest.js'
import { objectKeys, schemaAt } from './walk.js'

export type ConfigResult = { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] }

/** The shipped config/leaky.yaml: this module sits two levels below the repo root both in src/ and in dist/. */
export const DEFAULT_CONFIG_PATH = fileURLToPath(new URL('../../config/leaky.yaml', import.meta.url))

type Path = (string | number)[]

interface Located {
  /** the node at the deepest path segment found */
  node: Node | null
  /** the map key of that node, when it is a map value */
  key: Node | null
  found: boolean
}

class Locator {
  readonly #doc: Document
  readonly #lines: LineCounter
  readonly #file: string

  constructor(doc: Document, lines: LineCounter, file: string) {
    this.#doc = doc
    this.#lines = lines
    this.#file = file
  }

  locate(path: readonly PropertyKey[]): Located {
    let node = this.#doc.contents as Node | null
    let key: Node | null = null
    for (const seg of path) {
      if (isAlias(node)) node = (node.resolve(this.#doc) as Node | undefined) ?? null
      let next: Node | null = null
      let nextKey: Node | null = null
      if (isMap(node)) {
        const pair = node.items.find((p) => keyText(p.key) === String(seg))
        if (pair !== undefined) {
          nextKey = pair.key as Node
          next = (pair.value as Node | null) ?? nextKey
        }
      } else if (isSeq(node) && typeof seg === 'number') {
        next = (node.items[seg] as Node | undefined) ?? null
      }
      if (next === null) return { node, key, found: false }
      node = next
      key = nextKey
    }
    return { node, key, found: true }
  }

  issue(node: Node | null, path: readonly PropertyKey[], message: string): ConfigIssue {
    const offset = node?.range?.[0] ?? 0
    return this.at(offset, path, message)
  }

  at(offset: number, path: readonly PropertyKey[], message: string): ConfigIssue {
    const { line, col } = this.#lines.linePos(offset)
    return { file: this.#file, line, col, path: formatPath(path), message }
  }
}

function keyText(k: unknown): string {
  return isScalar(k) ? String(k.value) : String(k)
}

/** Validates config text; `file` only labels the issues. Every problem is listed, in file order. */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): ConfigResult {
  const lines = new LineCounter()
  // logLevel 'error': what yaml would print as a process warning (collection keys) is reported as an issue instead
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, merge: true, logLevel: 'error' })
  const loc = new Locator(doc, lines, file)
  // warnings too (an unknown !tag would silently become a string): a config is either right or rejected
  const broken = [...doc.errors, ...doc.warnings]
  if (broken.length > 0) {
    broken.sort((a, b) => a.pos[0] - b.pos[0])
    return { ok: false, issues: broken.map((e) => loc.at(e.pos[0], [], syntaxMessage(e.code, e.message, text, e.pos[0]))) }
  }

  const pass: Pass = { doc, env, dir: path.dirname(path.resolve(file)), loc, issues: [], unresolved: [], structural: [] }
  if (!interpolate(pass, doc.contents as Node | null, [])) doc.contents = null
  if (pass.structural.length > 0) return { ok: false, issues: pass.structural }
  const { issues, unresolved } = pass

  let raw: unknown
  try {
    raw = doc.toJS({ maxAliasCount: 1000 }) ?? {}
  } catch (err) {
    return { ok: false, issues: [...issues, loc.at(0, [], `cannot expand the document: ${(err as Error).message}`)] }
  }

  const parsed = configSchema.safeParse(raw)
  if (!parsed.success) {
    for (const zi of parsed.error.issues) {
      if (unresolved.some((p) => startsWith(zi.path, p))) continue
      for (const i of fromZod(zi, raw, loc)) issues.push(i)
    }
  }
  for (const r of checkRefs(raw)) {
    if (unresolved.some((p) => startsWith(r.path, p))) continue
    issues.push(loc.issue(loc.locate(r.path).node, r.path, r.message))
  }
  // certificate files are read only once the config is otherwise sound: their paths are then final
  if (parsed.success && issues.length === 0) {
    for (const r of checkTlsFiles(parsed.data)) issues.push(loc.issue(loc.locate(r.path).node, r.path, r.message))
  }
  if (issues.length > 0 || !parsed.success) {
    // file order reads best; sort is stable, so issues at one place keep the order they were found in
    issues.sort((a, b) => a.line - b.line || a.col - b.col)
    return { ok: false, issues }
  }
  return { ok: true, config: parsed.data }
}

/** parseConfig on a file's contents; a file that cannot be read is one issue with line 0. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): ConfigResult {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message
    return { ok: false, issues: [{ file, line: 0, col: 0, path: '', message: `cannot read config: ${why}` }] }
  }
  return parseConfig(text, file, env)
}

function startsWith(path: readonly PropertyKey[], prefix: readonly PropertyKey[]): boolean {
  return prefix.length <= path.length && prefix.every((seg, i) => String(seg) === String(path[i]))
}

function syntaxMessage(code: string, message: string, text: string, offset: number): string {
  if (code === 'MULTIPLE_DOCS') return 'a config file holds one YAML document: remove the extra "---"'
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1
  const lineEnd = text.indexOf('\n', offset)
  const line = text.slice(lineStart, lineEnd === -1 ? undefined : lineEnd)
  // `{ token: ${env:X} }` is the classic: braces of the reference end the flow map
  if (line.includes('${') && (line.includes('{ ') || line.includes('['))) return `${message} (quote values containing \${env:…} inside { } or [ ])`
  return message
}

interface Pass {
  doc: Document
  env: NodeJS.ProcessEnv
  /** relative ${file:} paths are read from here: the config file's directory */
  dir: string
  loc: Locator
  issues: ConfigIssue[]
  /** paths whose value could not be produced: the schema's complaint about them would only repeat the issue */
  unresolved: Path[]
  /** problems with the shape of the YAML itself (collection keys): validation would only add noise */
  structural: ConfigIssue[]
}

/** Substitutes env references in place; returns false for a node to drop (an alias to no anchor). */
function interpolate(p: Pass, node: Node | null, path: Path): boolean {
  if (node === null) return true
  if (isAlias(node)) {
    if (node.resolve(p.doc) !== undefined) return true
    p.issues.push(p.loc.issue(node, path, `unknown anchor "*${node.source}"`))
    p.unresolved.push(path)
    return false
  }
  if (isMap(node)) {
    for (const pair of node.items) {
      if (!isScalar(pair.key)) {
        p.structural.push(p.loc.issue(pair.key as Node | null, path, 'map keys must be plain names, not lists or maps'))
      } else if (!interpolate(p, pair.value as Node | null, [...path, keyText(pair.key)])) {
        pair.value = null
      }
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      if (!interpolate(p, item as Node | null, [...path, i])) node.items[i] = null
    })
  } else if (isScalar(node) && typeof node.value === 'string') {
    const r = interpolateEnv(node.value, p.env, p.dir)
    if (r.ok) {
      node.value = r.value
    } else {
      p.issues.push(p.loc.issue(node, path, r.message))
      p.unresolved.push(path)
    }
  }
  return true
}

const EXPECTED: Record<string, string> = { string: 'a string', array: 'a list', object: 'a map', record: 'a map', number: 'a number' }

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<PropertyKey, unknown>)[seg]
  }
  return v
}

function fromZod(zi: z.core.$ZodIssue, raw: unknown, loc: Locator): ConfigIssue[] {
  const path = zi.path
  const value = valueAt(raw, path)
  const at = loc.locate(path)
  if (zi.code === 'unrecognized_keys') {
    const allowed = objectKeys(schemaAt(configSchema, path) ?? configSchema)
    return zi.keys.map((k) => {
      const keyPath = [...path, k]
      return loc.issue(loc.locate(keyPath).key, keyPath, `unknown key "${k}"${didYouMean(k, allowed)}`)
    })
  }
  if (zi.code === 'invalid_key') {
    const why = zi.issues[0]?.message ?? zi.message
    return [loc.issue(at.key ?? at.node, path, `invalid name ${show(path.at(-1))}: ${why}`)]
  }
  if (value === undefined && !at.found && path.length > 0) {
    // required key absent: point at the map that should hold it (its key line when it has one)
    return [loc.issue(at.key ?? at.node, path, `missing required key "${String(path.at(-1))}"`)]
  }
  return [loc.issue(at.node, path, zodMessage(zi, value, path.length === 0))]
}

function zodMessage(zi: z.core.$ZodIssue, value: unknown, top: boolean): string {
  switch (zi.code) {
    case 'invalid_type':
      if (top) return `expected a map of settings at the top level, got ${show(value)}`
      return `expected ${EXPECTED[zi.expected] ?? zi.expected}, got ${show(value)}`
    case 'too_small':
      if (zi.origin === 'array') return `needs at least ${String(zi.minimum)} item${zi.minimum === 1 ? '' : 's'}`
      if (zi.origin === 'string') return zi.minimum === 1 ? 'must not be empty' : `needs at least ${String(zi.minimum)} characters`
      return `must be at least ${String(zi.minimum)}, got ${show(value)}`
    case 'too_big':
      if (zi.origin === 'array') return `allows at most ${String(zi.maximum)} items`
      if (zi.origin === 'string') return `allows at most ${String(zi.maximum)} characters`
      return `must be at most ${String(zi.maximum)}, got ${show(value)}`
    case 'invalid_format':
      return `${zi.message}, got ${show(value)}`
    default:
      return zi.message
  }
}
