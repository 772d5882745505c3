import t from 'tap'
import { countTokensSegmented, DeliveredText, MAX_RUN, SEGMENT } from '../../src/llm/delivered.js'
import { countTokens } from '../../src/llm/tokenizer.js'

/** Deterministic prose with punctuation, digits, newlines, double spaces, code and accents. */
function prose(chars: number): string {
  const words = ['the', 'Proxy', "don't", 'réseau', '12345', 'x=1;', '  two', 'spaces', '\n\n', '- item', '```js', 'a.b()', 'naïve', '—', '42%', 'URL:', 'https://example.com/a?b=c']
  let s = ''
  let x = 7
  while (s.length < chars) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    s += (x & 3 ? ' ' : '') + words[x % words.length]
  }
  return s
}

/** Cut text into deltas of 1..40 characters. */
function deltas(text: string): string[] {
  const out: string[] = []
  let x = 3
  for (let i = 0; i < text.length;) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    const n = 1 + (x % 40)
    out.push(text.slice(i, i + n))
    i += n
  }
  return out
}

t.test('counting in segments equals counting the whole text', async (t) => {
  const text = prose(200_000)
  const d = new DeliveredText()
  let maxPending = 0
  for (const piece of deltas(text)) {
    d.add(piece)
    maxPending = Math.max(maxPending, d.pending.length)
  }
  t.ok(d.counted > 0, 'segments were counted along the way')
  t.ok(maxPending < SEGMENT + 64, `pending stayed within a segment (${maxPending})`)
  t.equal(d.tokens(), countTokens(text))
  t.equal(d.chars, text.length)
  t.equal(countTokensSegmented(text), countTokens(text))
})

t.test('text without spaces is cut hard every MAX_RUN characters: bounded, fast, and close', async (t) => {
  const small = '漢字かな交じり文、句読点も含む。'.repeat(256)
  const whole = countTokens(small)
  const cuts = Math.floor(small.length / MAX_RUN)
  t.ok(Math.abs(countTokensSegmented(small) - whole) <= cuts, `${countTokensSegmented(small)} ≈ ${whole}`)

  // 160 K characters in one run: counted whole, the BPE would take minutes
  const text = '漢字かな交じり文'.repeat(20_000)
  const d = new DeliveredText()
  let maxPending = 0
  const start = performance.now()
  for (const piece of deltas(text)) {
    d.add(piece)
    maxPending = Math.max(maxPending, d.pending.length)
  }
  const n = d.tokens()
  t.ok(performance.now() - start < 5000, 'counted in seconds at most')
  t.ok(maxPending < MAX_RUN, `pending bounded (${maxPending})`)
  t.ok(n > text.length / 2 && n <= text.length, `plausible count ${n}`)
  t.equal(countTokensSegmented(text), n, 'one add or many: the same cuts')
})

t.test('short text is never tokenized until asked', async (t) => {
  const d = new DeliveredText()
  d.add('Hello')
  d.add(' world')
  t.equal(d.counted, 0)
  t.equal(d.pending, 'Hello world')
  t.equal(d.tokens(), countTokens('Hello world'))
  d.reset()
  t.equal(d.tokens(), 0)
})
