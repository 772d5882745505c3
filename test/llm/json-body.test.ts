import t from 'tap'
import { COPY_CAP, JsonBody, objectAfterKey, partialTexts } from '../../src/llm/json-body.js'

/** A body past the copy cap: model up front, a big array, usage at the end, pretty-printed like Gemini's. */
function big(): Buffer {
  const filler = '"' + 'v'.repeat(1000) + '"'
  const items = new Array(Math.ceil(COPY_CAP / 1000) + 100).fill(filler).join(',\n')
  return Buffer.from('{\n  "model": "big-model",\n  "data": [' + items + '],\n  "usage": {\n    "prompt_tokens": 77,\n    "note": "braces } in { strings"\n  }\n}\n')
}

t.test('past the cap: head and a ring of the tail, at any chunk size, wrapping anywhere', async (t) => {
  const body = big()
  for (const size of [body.length, 65535, 65537, 4097, 99991]) {
    const j = new JsonBody()
    for (let i = 0; i < body.length; i += size) j.add(body.subarray(i, i + size))
    t.ok(j.truncated, `size ${size}: truncated`)
    t.equal(j.size, body.length)
    t.same(j.lastObject('usage'), { prompt_tokens: 77, note: 'braces } in { strings' }, `size ${size}`)
    t.equal(j.stringField('model'), 'big-model')
    t.ok(body.toString().endsWith(j.tailText()), 'tail is the last bytes')
    t.equal(j.parse(), undefined, 'no full parse once truncated')
  }
})

t.test('a tiny first chunk then a huge one: the head still has the body start', async (t) => {
  const body = big()
  const j = new JsonBody()
  j.add(body.subarray(0, 3))
  j.add(body.subarray(3))
  t.equal(j.stringField('model'), 'big-model')
  t.equal(j.headText(), body.subarray(0, j.headText().length).toString())
})

t.test('small bodies: whole copy, full parse', async (t) => {
  const j = new JsonBody()
  j.add(Buffer.from('{"a":'))
  j.add(Buffer.from('[1,{"usage":{"x":1}}],"usage":{"x":2}}'))
  t.notOk(j.truncated)
  t.same(j.parse(), { a: [1, { usage: { x: 1 } }], usage: { x: 2 } })
  t.same(j.lastObject('usage'), { x: 2 })
})

t.test('escaped keys inside strings are not keys', async (t) => {
  t.equal(objectAfterKey('{"content":"say \\"usage\\":{\\"x\\":1}"}', 'usage'), null)
  t.same(objectAfterKey('{"usage" : {"a":"\\"}"}}', 'usage'), { a: '"}' })
})

t.test('partialTexts reads texts of a body cut anywhere, escapes included', async (t) => {
  const full = '{"choices":[{"message":{"role":"assistant","content":"line\\none \\"quoted\\" \\u00e9t\\u00e9"}}]}'
  t.equal(partialTexts(full), 'line\none "quoted" été')
  t.equal(partialTexts(full.slice(0, full.indexOf('\\u00e9t') + 3)), 'line\none "quoted" ', 'cut inside a \\u escape')
  t.equal(partialTexts(full.slice(0, full.indexOf('quoted') + 3)), 'line\none "quo')
  t.equal(partialTexts('{"data":[0.1,0.2'), '')
})

t.test('a literal backslash before u is not an escape to drop', async (t) => {
  t.equal(partialTexts('{"text":"C:\\\\u00'), 'C:\\u00')
})
