// "Did you mean": close typos get a suggestion, different words do not.
import t from 'tap'
import { didYouMean, editDistance, suggest } from '../../src/config/suggest.js'

t.test('edit distance counts a transposition as one edit', async (t) => {
  t.equal(editDistance('upstream', 'upstream'), 0)
  t.equal(editDistance('upstrem', 'upstream'), 1)
  t.equal(editDistance('upsteram', 'upstream'), 1)
  t.equal(editDistance('', 'abc'), 3)
  t.equal(editDistance('kitten', 'sitting'), 3)
})

t.test('suggest', async (t) => {
  const keys = ['listen', 'workers', 'drain_timeout', 'limits', 'limits_table', 'upstreams', 'routes']
  const cases: [string, string | undefined][] = [
    ['listn', 'listen'],
    ['worker', 'workers'],
    ['Routes', 'routes'],
    ['limit', 'limits'],
    ['limits_tabel', 'limits_table'],
    ['upstream', 'upstreams'],
    ['frobnicate', undefined],
    ['ab', undefined],
    ['x', undefined],
  ]
  for (const [word, want] of cases) t.equal(suggest(word, keys), want, `${word} → ${want}`)
  t.equal(suggest('opnai', ['openai', 'qwen', 'gemini']), 'openai')
  t.equal(suggest('anything', []), undefined)
  t.equal(didYouMean('ip-rp', ['ip-rps', 'ip-tpm']), ' (did you mean "ip-rps"?)')
  t.equal(didYouMean('zzz', ['ip-rps']), '')
})
