// One tokenizer for the whole product: the stub reports usage with it and the estimator pre-charges with it,
// so against our own stub an estimate is exact, and against a real provider it is a close (o200k) estimate.
//
// gpt-tokenizer's BPE is quadratic in the length of one pre-tokenizer piece, and a run of CJK text is one piece
// (16 K characters ~1.3 s, 160 K ~2 min here): longer texts are counted in segments (delivered.ts), which equals
// the plain count on prose and bounds the cost of any text.
import { bpeTokens } from './bpe.js'
import { countTokensSegmented, MAX_RUN } from './delivered.js'

export function countTokens(text: string): number {
  return text.length < MAX_RUN ? bpeTokens(text) : countTokensSegmented(text)
}
