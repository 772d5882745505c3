// The plain BPE count, apart from tokenizer.ts: the segmented count (delivered.ts) is built on it and tokenizer.ts
// on the segmented count, so it sits below both and neither imports the other back.
import { countTokens as bpeCount } from 'gpt-tokenizer'

/** The plain BPE count: only for text known to have no long unbroken run (delivered.ts's segments). */
export function bpeTokens(text: string): number {
  return text.length === 0 ? 0 : bpeCount(text)
}
