// The tokenizer pool's task: one count, off the calling thread. Loaded by piscina from dist/. Segmented like every
// other count (delivered.ts), so a prompt that is one long CJK run cannot hold a pool thread for minutes.
import { countTokensSegmented } from './delivered.js'

export default function count(text: string): number {
  return countTokensSegmented(text)
}
