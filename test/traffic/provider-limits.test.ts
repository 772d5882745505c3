// Parsing the providers' rate-limit headers (src/traffic/provider-limits.ts) into a private target table.
import t from 'tap'
import { parseResetDuration, parseRetryAfter, readProviderLimits } from '../../src/traffic/provider-limits.js'
import { TargetTable } from '../../src/traffic/target-table.js'

t.test('OpenAI reset durations', async (t) => {
  t.equal(parseResetDuration('1s'), 1000)
  t.equal(parseResetDuration('6m0s'), 360_000)
  t.equal(parseResetDuration('20ms'), 20)
  t.equal(parseResetDuration('1h2m3.5s'), 3_723_500)
  for (const bad of ['', 's', '1', '1 s', '1d', '-1s', 'soon']) t.ok(Number.isNaN(parseResetDuration(bad)), JSON.stringify(bad))
})

t.test('Retry-After: seconds or an HTTP date', async (t) => {
  t.equal(parseRetryAfter('3', 0), 3000)
  t.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4000), 6000)
  t.ok(Number.isNaN(parseRetryAfter('later', 0)))
})

function table(): { tb: TargetTable; slot: number } {
  const tb = TargetTable.create(8)
  return { tb, slot: tb.slot('u', '#account') }
}

t.test('remaining 0 with a reset blocks until the reset; remaining > 0 only updates the gauge', async (t) => {
  const { tb, slot } = table()
  readProviderLimits(tb, slot, 200, { 'x-ratelimit-remaining-requests': '99', 'x-ratelimit-remaining-tokens': '1200', 'x-ratelimit-reset-tokens': '2s' }, 1000)
  t.equal(tb.quotaUntil(slot), 0)
  t.equal(tb.remaining(slot, 'requests'), 99)
  t.equal(tb.remaining(slot, 'tokens'), 1200)
  readProviderLimits(tb, slot, 200, { 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '6m0s' }, 1000)
  t.equal(tb.quotaUntil(slot), 361_000)
  // an answer sent before the block (its remaining > 0) arrives later: it must not lift the block
  readProviderLimits(tb, slot, 200, { 'x-ratelimit-remaining-tokens': '50', 'x-ratelimit-reset-tokens': '1s' }, 1001)
  t.equal(tb.quotaUntil(slot), 361_000)
})

t.test('Anthropic: the binding token bucket, RFC 3339 resets', async (t) => {
  const { tb, slot } = table()
  const reset = new Date(5000).toISOString()
  readProviderLimits(tb, slot, 200, {
    'anthropic-ratelimit-requests-remaining': '40',
    'anthropic-ratelimit-input-tokens-remaining': '0', 'anthropic-ratelimit-input-tokens-reset': reset,
    'anthropic-ratelimit-output-tokens-remaining': '900',
  }, 1000)
  t.equal(tb.remaining(slot, 'requests'), 40)
  t.equal(tb.remaining(slot, 'tokens'), 0)
  t.equal(tb.quotaUntil(slot), 5000)
})

t.test('a 429 with Retry-After blocks for that long, from any provider', async (t) => {
  const { tb, slot } = table()
  readProviderLimits(tb, slot, 429, { 'retry-after': '7' }, 1000)
  t.equal(tb.quotaUntil(slot), 8000)
  readProviderLimits(tb, slot, 200, { 'retry-after': '30' }, 1000)
  t.equal(tb.quotaUntil(slot), 8000, 'Retry-After on a success is not a block')
})

t.test('malformed headers are ignored and counted', async (t) => {
  const { tb, slot } = table()
  readProviderLimits(tb, slot, 200, { 'x-ratelimit-remaining-tokens': 'lots' }, 0)
  readProviderLimits(tb, slot, 200, { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': 'tomorrow' }, 0)
  readProviderLimits(tb, slot, 429, { 'retry-after': 'a while' }, 0)
  readProviderLimits(tb, slot, 200, { 'anthropic-ratelimit-requests-remaining': '-3' }, 0)
  t.equal(tb.malformed(slot), 4)
  t.equal(tb.quotaUntil(slot), 0, 'nothing blocked on a header that did not parse')
  t.equal(tb.remaining(slot, 'tokens'), -1, 'never reported')
})
