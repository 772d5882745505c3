// A JSON Schema checker for the subset the admin OpenAPI document uses (type incl. null unions, enum, const,
// properties, required, additionalProperties: false, items, minItems, pattern, $ref into components.schemas).
// Returns the problems found, each with the JSON path, so a test can print what did not match.
type Schema = Record<string, unknown>

export function checkSchema(value: unknown, schema: Schema, root: Schema, at = '$'): string[] {
  if (typeof schema.$ref === 'string') {
    const name = schema.$ref.replace('#/components/schemas/', '')
    const target = ((root.components as Schema).schemas as Record<string, Schema>)[name]
    if (target === undefined) return [`${at}: unresolved $ref ${schema.$ref}`]
    return checkSchema(value, target, root, at)
  }
  const out: string[] = []
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string]
    if (!types.some((ty) => is(value, ty))) return [`${at}: expected ${types.join('|')}, got ${JSON.stringify(value)?.slice(0, 80)}`]
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) out.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`)
  if ('const' in schema && schema.const !== value) out.push(`${at}: expected ${JSON.stringify(schema.const)}`)
  if (typeof schema.pattern === 'string' && typeof value === 'string' && !new RegExp(schema.pattern as string).test(value)) out.push(`${at}: ${value} does not match ${schema.pattern}`)
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>
    const props = (schema.properties ?? {}) as Record<string, Schema>
    for (const r of (schema.required ?? []) as string[]) if (!(r in o)) out.push(`${at}: missing required ${r}`)
    for (const [k, v] of Object.entries(o)) {
      if (k in props) out.push(...checkSchema(v, props[k], root, `${at}.${k}`))
      else if (schema.additionalProperties === false) out.push(`${at}: unexpected property ${k}`)
    }
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) out.push(`${at}: fewer than ${schema.minItems} items`)
    if (schema.items !== undefined) value.forEach((v, i) => out.push(...checkSchema(v, schema.items as Schema, root, `${at}[${i}]`)))
  }
  return out
}

function is(v: unknown, type: string): boolean {
  switch (type) {
    case 'null': return v === null
    case 'array': return Array.isArray(v)
    case 'object': return v !== null && typeof v === 'object' && !Array.isArray(v)
    case 'integer': return Number.isInteger(v)
    case 'number': return typeof v === 'number'
    case 'string': return typeof v === 'string'
    case 'boolean': return typeof v === 'boolean'
    default: return false
  }
}
