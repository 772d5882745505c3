// The pool runs in worker threads, which load compiled JS: build first (npx tsc -p tsconfig.build.json).
import t from 'tap'
import { countTokens } from '../../src/llm/tokenizer.js'
import { estimateTokens } from '../../src/llm/estimate.js'
import { TokenizerPool, estimateTokensAsync, closeWorkerPool } from '../../dist/llm/tokenizer-pool.js'

/** ~200 KB of varied prose, different from any text the tokenizer has cached in this process. */
function text(bytes: number, seed: number): string {
  const words = ['limit', 'bucket', 'token', 'proxy', 'stream', 'leaky', 'Gemini', 'Qwen', 'OpenAI', '1234', 'naïve', '—', 'x=y;', '\n']
  let s = ''
  let x = seed
  while (s.length < bytes) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    s += ' ' + words[x % words.length] + (x % 7 === 0 ? '.' : '')
  }
  return s
}

t.test('the pool counts a 200 KB text like countTokens, without blocking this event loop', async (t) => {
  const pool = new TokenizerPool({ threads: 1 })
  t.teardown(() => pool.close())
  await pool.count('warm the thread up') // starting the thread and loading the BPE tables is not what is measured

  const big = text(200_000, 11)
  let ticks = 0
  let ticking = true
  const tick = (): void => {
    ticks++
    if (ticking) setImmediate(tick)
  }
  setImmediate(tick)
  const started = performance.now()
  const n = await pool.count(big)
  const poolMs = performance.now() - started
  ticking = false

  const t0 = performance.now()
  const expected = countTokens(big)
  const inlineMs = performance.now() - t0
  t.equal(n, expected)
  // counting inline would have given the ticker no turn at all
  t.ok(ticks >= 3, `event loop kept turning while the pool counted (${ticks} ticks in ${poolMs.toFixed(1)} ms; inline count ${inlineMs.toFixed(1)} ms)`)
})

t.test('estimateTokensAsync: the pool above the threshold, inline below, same numbers as estimateTokens', async (t) => {
  t.teardown(() => closeWorkerPool())
  const path = '/v1/chat/completions'
  const h = { dashscopeSse: false }
  const large = { model: 'gpt-4o', messages: [{ role: 'system', content: 'Summarise.' }, { role: 'user', content: text(100_000, 5) }], max_tokens: 500 }
  const small = { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hello' }] }

  const viaPool = await estimateTokensAsync('openai-chat', large, path, h, 256)
  t.same(viaPool, estimateTokens('openai-chat', large, path, h, 256))
  t.equal(viaPool.maxOutput, 500)

  // a closed pool rejects every count: the small bodies below prove they never went near it
  const closed = new TokenizerPool({ threads: 1 })
  await closed.close()
  const inline = await estimateTokensAsync('gemini', { contents: [{ parts: [{ text: 'hi' }] }] }, '/v1beta/models/g:generateContent', h, 100, { pool: closed })
  t.same(inline, estimateTokens('gemini', { contents: [{ parts: [{ text: 'hi' }] }] }, '/v1beta/models/g:generateContent', h, 100))
  t.same(await estimateTokensAsync('openai-chat', small, path, h, 256, { threshold: 1 << 20 }), estimateTokens('openai-chat', small, path, h, 256))

  // a failed pool never rejects: the prompt falls back to 4 characters a token
  const fallback = await estimateTokensAsync('openai-chat', large, path, h, 256, { pool: closed })
  const chars = 'Summarise.'.length + large.messages[1].content.length
  t.equal(fallback.prompt, Math.ceil(chars / 4) + 2 * 3 + 3)
})

t.test('a closed pool rejects instead of starting threads again', async (t) => {
  const pool = new TokenizerPool({ threads: 1 })
  t.equal(await pool.count('one two'), countTokens('one two'))
  await pool.close()
  await t.rejects(pool.count('one two'), /closed/)
  await pool.close()
})
