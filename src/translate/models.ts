// A route's `models:` table: which upstream (and which model name there) serves each model a client asks for.
// Keys are exact names, prefixes ending in `*` (`gemini-*`, `*` alone catches all) or aliases; a value names an
// upstream (the model goes as asked), `upstream/model` (the upstream sees that model), another model of the table
// (an alias), or a list of those: the fallback order. Resolved once when the config is checked and compiled, so a
// request does one Map lookup (or a short prefix scan) and gets a ready list of choices.
import { didYouMean } from '../config/suggest.js'

/** One place a model can be served: an upstream by name and the model name it is sent. */
export interface ModelChoice {
  upstream: string
  model: string
}

export interface ResolvedModels {
  exact: Map<string, ModelChoice[]>
  /** longest prefix first */
  prefixes: Array<{ prefix: string; choices: ModelChoice[] }>
  /** every configured name, in file order: GET …/models lists them */
  names: string[]
}

export interface ModelIssue {
  /** the key of the entry, and the index in its list (-1: a single value) */
  key: string
  index: number
  message: string
}

type Raw = Record<string, unknown>

/**
 * Resolve a `models:` table. An alias chain is followed (a → b → c) and refused when it loops; an alias whose target
 * matches only a prefix entry keeps its own name for that upstream unless the prefix entry renames it.
 */
export function resolveModels(table: Raw, upstreams: ReadonlySet<string>): { models: ResolvedModels; issues: ModelIssue[] } {
  const issues: ModelIssue[] = []
  const exact = new Map<string, ModelChoice[]>()
  const prefixes: ResolvedModels['prefixes'] = []
  const names = Object.keys(table)

  const resolveValue = (v: string, asked: string, seen: string[]): ModelChoice | string => {
    if (upstreams.has(v)) return { upstream: v, model: asked }
    const slash = v.indexOf('/')
    if (slash > 0 && upstreams.has(v.slice(0, slash))) return { upstream: v.slice(0, slash), model: v.slice(slash + 1) }
    // an alias: a name of this table, followed to where it is served
    if (seen.includes(v)) return `alias loop: ${[...seen, v].join(' → ')}`
    const target = lookupRaw(table, v)
    if (target === null) {
      const up = slash > 0 ? v.slice(0, slash) : v
      return `"${v}" is neither an upstream, "upstream/model", nor a model of this table${didYouMean(up, [...upstreams, ...names])}`
    }
    const tv = table[target]
    if (Array.isArray(tv)) return `"${v}" is itself a fallback list: list its members instead`
    if (typeof tv !== 'string') return `"${v}" has no usable value`
    // a prefix entry serves the name asked for (v), not the pattern
    return resolveValue(tv, v, [...seen, v])
  }

  for (const key of names) {
    const raw = table[key]
    const values = Array.isArray(raw) ? raw : [raw]
    const choices: ModelChoice[] = []
    values.forEach((v, i) => {
      if (typeof v !== 'string' || v === '') {
        issues.push({ key, index: Array.isArray(raw) ? i : -1, message: 'expected an upstream, "upstream/model" or a model name' })
        return
      }
      // a prefix entry's model is the one asked for: resolved per request (model '' here)
      const r = resolveValue(v, key.endsWith('*') ? '' : key, [key])
      if (typeof r === 'string') issues.push({ key, index: Array.isArray(raw) ? i : -1, message: r })
      else choices.push(r)
    })
    if (Array.isArray(raw) && raw.length === 0) issues.push({ key, index: -1, message: 'an empty list serves nothing' })
    if (key.endsWith('*')) prefixes.push({ prefix: key.slice(0, -1), choices })
    else exact.set(key, choices)
  }
  prefixes.sort((a, b) => b.prefix.length - a.prefix.length)
  return { models: { exact, prefixes, names }, issues }
}

/** The table key that serves `model`: the exact entry, else the longest matching prefix; null when none. */
function lookupRaw(table: Raw, model: string): string | null {
  if (Object.hasOwn(table, model)) return model
  let best: string | null = null
  for (const k of Object.keys(table)) {
    if (k.endsWith('*') && model.startsWith(k.slice(0, -1)) && (best === null || k.length > best.length)) best = k
  }
  return best
}

/** A choice with its upstream resolved, for the worker plan. model '' : the model asked for goes as it is. */
export interface CompiledChoice<U> {
  upstream: U
  model: string
}

export interface CompiledModels<U> {
  exact: Map<string, CompiledChoice<U>[]>
  prefixes: Array<{ prefix: string; choices: CompiledChoice<U>[] }>
  /** the answer to GET …/models, rendered once */
  listBody: string
}

/** Compile a validated `models:` table against the plan's upstreams (validation already refused unknown names). */
export function compileModels<U>(table: Record<string, string | string[]>, upstreams: Map<string, U>): CompiledModels<U> {
  const { models, issues } = resolveModels(table, new Set(upstreams.keys()))
  if (issues.length > 0) throw new Error(`models.${issues[0].key}: ${issues[0].message}`)
  const bind = (cs: ModelChoice[]) => cs.map((c) => ({ upstream: upstreams.get(c.upstream)!, model: c.model }))
  const exact = new Map<string, CompiledChoice<U>[]>()
  for (const [k, cs] of models.exact) exact.set(k, bind(cs))
  const listBody = JSON.stringify({
    object: 'list',
    data: models.names.map((id) => ({ id, object: 'model', created: 0, owned_by: 'leaky' })),
  })
  return { exact, prefixes: models.prefixes.map((p) => ({ prefix: p.prefix, choices: bind(p.choices) })), listBody }
}

export function lookupCompiled<U>(m: CompiledModels<U>, model: string): CompiledChoice<U>[] | null {
  const hit = m.exact.get(model)
  if (hit !== undefined) return hit
  for (let i = 0; i < m.prefixes.length; i++) if (model.startsWith(m.prefixes[i].prefix)) return m.prefixes[i].choices
  return null
}
