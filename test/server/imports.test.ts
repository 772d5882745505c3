// The import graph of src/, read with the TypeScript compiler: the request pipeline is a line. No module of
// src/server/ or src/llm/ takes part in an import circle, and no stage imports a stage that runs before it
// (forward does not reach back into accept, account does not reach back into limit) — what a later stage needs of
// an earlier one's work lives in the capability's own folder (src/limiter/, src/spend/, src/upstream/, ...).
import t from 'tap'
import ts from 'typescript'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { ROOT } from '../helpers/proxy.js'

const SRC = path.join(ROOT, 'src')

/** The stages of src/server/pipeline.ts in the order a request meets them; a stage's helper files share its rank. */
const ORDER: Array<[string, string[]]> = [
  ['accept', ['accept']],
  ['route', ['route']],
  ['identify', ['identify', 'jwt']],
  ['model', ['model']],
  ['estimate', ['estimate']],
  ['limit', ['limit', 'budget']],
  ['admit', ['admit']],
  ['cache', ['cache']],
  ['forward', ['forward']],
  ['stream', ['stream']],
  ['account', ['account']],
]
const RANK = new Map<string, number>()
ORDER.forEach(([, files], i) => files.forEach((f) => RANK.set(`server/stages/${f}.ts`, i)))

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name)
    if (statSync(p).isDirectory()) walk(p, out)
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p)
  }
  return out
}

interface Edge { to: string; typeOnly: boolean }

/** Every relative import and re-export of a file; `import type` and all-type named imports are type-only. */
function importsOf(file: string): Edge[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false)
  const out: Edge[] = []
  const add = (spec: ts.Expression | undefined, typeOnly: boolean) => {
    if (spec === undefined || !ts.isStringLiteral(spec) || !spec.text.startsWith('.')) return
    out.push({ to: path.relative(SRC, path.resolve(path.dirname(file), spec.text.replace(/\.js$/, '.ts'))), typeOnly })
  }
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st)) {
      const c = st.importClause
      let typeOnly = c !== undefined && c.isTypeOnly
      if (c !== undefined && !typeOnly && c.name === undefined && c.namedBindings !== undefined && ts.isNamedImports(c.namedBindings)) {
        typeOnly = c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly)
      }
      add(st.moduleSpecifier, typeOnly)
    } else if (ts.isExportDeclaration(st)) {
      add(st.moduleSpecifier, st.isTypeOnly)
    }
  }
  return out
}

const files = walk(SRC, []).map((f) => path.relative(SRC, f)).sort()
const graph = new Map<string, Edge[]>(files.map((f) => [f, importsOf(path.join(SRC, f))]))

/** Strongly connected components (Tarjan) of the runtime imports: every one bigger than a file is a circle. */
function circles(): string[][] {
  let index = 0
  const idx = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const on = new Set<string>()
  const out: string[][] = []
  const visit = (v: string): void => {
    idx.set(v, index)
    low.set(v, index++)
    stack.push(v)
    on.add(v)
    for (const e of graph.get(v) ?? []) {
      if (e.typeOnly || !graph.has(e.to)) continue
      if (!idx.has(e.to)) {
        visit(e.to)
        low.set(v, Math.min(low.get(v)!, low.get(e.to)!))
      } else if (on.has(e.to)) low.set(v, Math.min(low.get(v)!, idx.get(e.to)!))
    }
    if (low.get(v) !== idx.get(v)) return
    const c: string[] = []
    let w: string
    do {
      w = stack.pop()!
      on.delete(w)
      c.push(w)
    } while (w !== v)
    if (c.length > 1 || (graph.get(v) ?? []).some((e) => !e.typeOnly && e.to === v)) out.push(c.sort())
  }
  for (const f of files) if (!idx.has(f)) visit(f)
  return out
}

t.test('the import graph is read', async (t) => {
  t.ok(files.length > 100, `${files.length} files under src/`)
  t.ok(graph.get('server/pipeline.ts')!.some((e) => e.to === 'server/stages/forward.ts'), 'pipeline imports forward')
  for (const f of RANK.keys()) t.ok(graph.has(f), `${f} exists`)
})

t.test('src/server/ and src/llm/ take part in no import circle', async (t) => {
  const bad = circles().filter((c) => c.some((f) => f.startsWith('server/') || f.startsWith('llm/')))
  t.same(bad, [], bad.map((c) => c.join(' → ')).join('\n') || 'no circles')
})

t.test('no stage imports a stage that runs before it', async (t) => {
  const back: string[] = []
  for (const [from, r] of RANK) {
    for (const e of graph.get(from)!) {
      const to = RANK.get(e.to)
      if (to !== undefined && to < r) back.push(`${from} → ${e.to}${e.typeOnly ? ' (type)' : ''}`)
    }
  }
  t.same(back, [], back.join('\n') || 'stages import forward only')
})
