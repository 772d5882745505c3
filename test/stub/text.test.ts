// The completion texts: every piece is one o200k token and pieces never merge, so a text of n pieces is n tokens
// and every prefix of i pieces is i tokens — the property that makes streamed usage and deltas agree.
import t from 'tap'
import { countTokens } from '../../src/llm/tokenizer.js'
import { Completion, completionFor, MAX_TOKENS, WORDS } from '../../src/stub/text.js'

t.test('the word list: each word is one token with a space, capitalised, and both', async (t) => {
  t.equal(WORDS.length, 128, 'a power of two: the generator draws with a mask')
  t.equal(new Set(WORDS).size, WORDS.length, 'no duplicates')
  const bad: string[] = []
  for (const w of WORDS) {
    const cap = w[0].toUpperCase() + w.slice(1)
    for (const piece of [' ' + w, cap, ' ' + cap]) if (countTokens(piece) !== 1) bad.push(JSON.stringify(piece))
  }
  t.same(bad, [], 'every piece is a single token')
  t.equal(countTokens('.'), 1)
})

t.test('a text of n pieces is exactly n tokens, and so is every prefix', async (t) => {
  for (const seed of [0, 1, 42, 0xdeadbeef]) {
    for (const n of [0, 1, 2, 3, 15, 16, 17, 100, 1000]) {
      const c = completionFor(seed, n)
      t.equal(c.pieces.length, n)
      t.equal(c.tokens, n, `seed ${seed} n ${n}: countTokens(text) = n`)
      t.equal(c.text, c.pieces.join(''))
    }
    const c = completionFor(seed, 300)
    let bad = 0
    for (let i = 1; i <= 300; i++) if (countTokens(c.slice(0, i)) !== i) bad++
    t.equal(bad, 0, `seed ${seed}: every prefix of i pieces is i tokens`)
  }
})

t.test('the longest text is exact too', async (t) => {
  const c = completionFor(7, MAX_TOKENS)
  t.equal(c.tokens, MAX_TOKENS)
})

t.test('texts are deterministic, differ by seed, and look like sentences', async (t) => {
  const a = completionFor(5, 64)
  t.equal(completionFor(5, 64), a, 'cached: the same object')
  t.equal(new Completion([...a.pieces]).text, a.text)
  t.not(completionFor(6, 64).text, a.text, 'another seed, another text')
  t.match(a.text, /^[A-Z][a-z]+( [a-z]+)+\. [A-Z]/, 'capitalised sentences ending with a period')
  t.match(a.text, /^[A-Za-z. ]+$/, 'nothing that would need JSON escaping')
  t.equal(completionFor(5, 10).text, a.slice(0, 10), 'a shorter text is a prefix of a longer one with the same seed')
})
