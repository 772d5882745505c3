// The price table and a response's cost: the shipped table validates and carries its date, the config's prices
// override and extend it, each usage kind is priced at its own rate, and an unknown model has no price (never 0).
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { PriceTable, costPico, formatUsd, shippedPrices } from '../../src/spend/prices.js'
import { parseConfig } from '../../src/config/index.js'
import type { Usage } from '../../src/llm/usage.js'
import { SCRATCH_TMP } from '../helpers/scratch.js'

const usage = (u: Partial<Usage>): Usage => ({
  prompt: 0, completion: 0, thoughts: 0, cached: 0, cacheWrite: 0, toolPrompt: 0, audio: 0, total: 0, model: '', source: 'reported', ...u,
})

t.test('the shipped table validates, has a date and prices every provider', async (t) => {
  const s = shippedPrices()
  t.match(s.asOf, /^\d{4}-\d{2}-\d{2}$/)
  for (const p of ['openai', 'gemini', 'qwen', 'anthropic'] as const) t.ok(Object.keys(s.providers[p] ?? {}).length > 0, p)
  const table = new PriceTable({})
  t.ok(table.size > 20)
})

t.test('dated snapshots and Gemini model paths price as their base model; unknown is null', async (t) => {
  const table = new PriceTable({})
  t.same(table.lookup('openai', 'gpt-4o-mini-2024-07-18'), table.lookup('openai', 'gpt-4o-mini'))
  t.not(table.lookup('openai', 'gpt-4o-mini'), null)
  t.same(table.lookup('anthropic', 'claude-sonnet-4-5-20250929'), table.lookup('anthropic', 'claude-sonnet-4-5'))
  t.same(table.lookup('gemini', 'models/gemini-2.5-flash'), table.lookup('gemini', 'gemini-2.5-flash'))
  t.equal(table.lookup('openai', 'my-finetune'), null, 'unknown model: no price')
  t.equal(table.lookup('openai', ''), null, 'no model: no price')
  t.equal(table.lookup('gemini', 'gpt-4o-mini'), null, 'a price belongs to its provider')
})

t.test('each usage kind at its own rate (recorded usage from ../shared/recorded)', async (t) => {
  const table = new PriceTable({})
  // gpt-4o-mini tool call (openai/chat-json-toolcall.json): 92 prompt, 17 completion at 0.15 / 0.60 per 1 M
  t.equal(formatUsd(costPico(table.lookup('openai', 'gpt-4o-mini-2024-07-18')!, usage({ prompt: 92, completion: 17 }))), '0.000024')
  t.equal(costPico(table.lookup('openai', 'gpt-4o-mini')!, usage({ prompt: 92, completion: 17 })), 92 * 150_000 + 17 * 600_000)
  // Gemini url_context (gemini/generate-webfetch-tooluse.json): 32 prompt + 2395 tool-use prompt at 0.30,
  // 41 candidates + 47 thoughts at 2.50 → 948.1 µUSD
  const gem = costPico(table.lookup('gemini', 'gemini-2.5-flash')!, usage({ prompt: 32, completion: 88, thoughts: 47, toolPrompt: 2395 }))
  t.equal(gem, (32 + 2395) * 300_000 + 88 * 2_500_000)
  t.equal(formatUsd(gem), '0.000948')
  // Gemini implicit cache (gemini/generate-video-cached.json): 17379 of 17713 prompt tokens cached
  const cached = costPico(table.lookup('gemini', 'gemini-2.5-flash')!, usage({ prompt: 17713, cached: 17379, completion: 889, thoughts: 821 }))
  t.equal(cached, (17713 - 17379) * 300_000 + 17379 * 30_000 + 889 * 2_500_000)
  // Anthropic: prompt = input + cache write + cache read, each at its rate
  const claude = costPico(table.lookup('anthropic', 'claude-sonnet-4-5')!, usage({ prompt: 1000 + 2000 + 3000, cacheWrite: 2000, cached: 3000, completion: 500 }))
  t.equal(claude, 1000 * 3_000_000 + 2000 * 3_750_000 + 3000 * 300_000 + 500 * 15_000_000)
  // o3-mini reasoning (openai/chat-json-o3-mini-reasoning.json): reasoning at the output rate by default
  t.equal(costPico(table.lookup('openai', 'o3-mini')!, usage({ prompt: 7, completion: 87, thoughts: 64 })), 7 * 1_100_000 + 87 * 4_400_000)
})

t.test('the config overrides and extends the shipped prices; per-request price; reasoning rate', async (t) => {
  const r = parseConfig(`prices:
  openai:
    gpt-4o-mini: { input: 1, output: 2 }
    my-finetune-2025-01-01: { input: 0.3, output: 1.2, reasoning: 5, request: 0.001 }
`, 'p.yaml')
  t.ok(r.ok, JSON.stringify(r))
  if (!r.ok) return
  const table = new PriceTable(r.config.prices)
  t.equal(costPico(table.lookup('openai', 'gpt-4o-mini')!, usage({ prompt: 10, completion: 10 })), 10 * 1_000_000 + 10 * 2_000_000)
  const ft = table.lookup('openai', 'my-finetune')!
  t.equal(costPico(ft, usage({ prompt: 10, completion: 10, thoughts: 4 })), 10 * 300_000 + 6 * 1_200_000 + 4 * 5_000_000 + 1e9)
  t.not(table.lookup('openai', 'gpt-4o'), null, 'the rest of the shipped table stays')
})

t.test('bad prices are config errors with file:line:col', async (t) => {
  const r = parseConfig(`prices:
  openai:
    gpt-4o-mini: { input: -1, output: .nan }
  opnai:
    x: { input: 1, output: 1 }
  gemini:
    y: { input: 1e9, output: 1 }
    z: { output: 1 }
`, 'bad.yaml')
  t.notOk(r.ok)
  if (r.ok) return
  const lines = r.issues.map((i) => `${i.line}:${i.col} ${i.path}: ${i.message}`)
  t.match(lines.join('\n'), /3:\d+ prices\.openai\.gpt-4o-mini\.input: expected a number from 0 to 100000, got -1/)
  t.match(lines.join('\n'), /3:\d+ prices\.openai\.gpt-4o-mini\.output: expected a number from 0 to 100000/)
  t.match(lines.join('\n'), /4:\d+ prices.*opnai.*openai/, 'unknown provider, with a suggestion')
  t.match(lines.join('\n'), /7:\d+ prices\.gemini\.y\.input: expected a number from 0 to 100000, got 1000000000/)
  t.match(lines.join('\n'), /8:\d+ prices\.gemini\.z\.input/)
})

t.test('a broken price file names the file', async (t) => {
  const dir = mkdtempSync(path.join(SCRATCH_TMP, 'prices-'))
  const file = path.join(dir, 'prices.yaml')
  writeFileSync(file, 'as_of: "2026-01-01"\nproviders:\n  openai:\n    m: { input: -2, output: 1 }\n')
  t.throws(() => shippedPrices(file), { code: 'LEAKY_PRICES_FILE', message: /prices\.yaml: providers\.openai\.m\.input/ })
})

t.test('formatUsd: six places, rounded', async (t) => {
  t.equal(formatUsd(0), '0.000000')
  t.equal(formatUsd(499_999), '0.000000')
  t.equal(formatUsd(500_000), '0.000001')
  t.equal(formatUsd(1_234_567_890_123), '1.234568')
  t.equal(formatUsd(12e12), '12.000000')
})
