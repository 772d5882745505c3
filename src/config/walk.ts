// Walking the schema tree beside a value: redaction finds secrets this way, and the loader finds which keys an
// object accepts (for "did you mean"). Wrappers are looked through; a pipe is read on the side that still has the
// user's shape (the input side of a transform, the output side of a preprocess).
import type * as z from 'zod'

type Def = {
  type: string
  innerType?: z.ZodType
  in?: z.ZodType
  out?: z.ZodType
  shape?: Record<string, z.ZodType>
  valueType?: z.ZodType
  element?: z.ZodType
}

function def(s: z.ZodType): Def {
  return s._zod.def as unknown as Def
}

/** The next schema inward, or null when `s` is not a wrapper. */
export function inner(s: z.ZodType): z.ZodType | null {
  const d = def(s)
  switch (d.type) {
    case 'optional': case 'default': case 'prefault': case 'nullable': case 'readonly': case 'catch': case 'nonoptional':
      return d.innerType ?? null
    case 'pipe':
      return (d.out && def(d.out).type === 'transform' ? d.in : d.out) ?? null
    default:
      return null
  }
}

/** Every schema from `s` inward through wrappers, outermost first. */
export function layers(s: z.ZodType): z.ZodType[] {
  const out = [s]
  for (let next = inner(s); next !== null; next = inner(next)) out.push(next)
  return out
}

/** The schema of the child `segment` (object key, record key or array index), or null when there is none. */
export function child(s: z.ZodType, segment: string | number): z.ZodType | null {
  const core = layers(s).at(-1) as z.ZodType
  const d = def(core)
  if (d.type === 'object' && d.shape) return Object.hasOwn(d.shape, segment) ? d.shape[segment] : null
  if (d.type === 'record') return d.valueType ?? null
  if (d.type === 'array') return d.element ?? null
  return null
}

/** The keys an object schema accepts, or [] when `s` is not an object. */
export function objectKeys(s: z.ZodType): string[] {
  const d = def(layers(s).at(-1) as z.ZodType)
  return d.type === 'object' && d.shape ? Object.keys(d.shape) : []
}

/** The schema at `path` from `root`, or null when the path leaves the schema. */
export function schemaAt(root: z.ZodType, path: readonly PropertyKey[]): z.ZodType | null {
  let s: z.ZodType | null = root
  for (const seg of path) {
    if (s === null) return null
    s = child(s, seg as string | number)
  }
  return s
}
