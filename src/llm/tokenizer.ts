// One tokenizer for the whole product: the stub reports usage with it and the estimator pre-charges with it,
// so against our own stub an estimate is exact, and against a real provider it is a close (o200k) estimate.
import { countTokens as bpeCount } from 'gpt-tokenizer'

export function countTokens(text: string): number {
  return text.length === 0 ? 0 : bpeCount(text)
}
