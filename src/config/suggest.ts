// "Did you mean" for config names: the closest candidate by edit distance, offered only when it is close enough
// that it is probably the intended word (a typo, not a different name).

/** Levenshtein distance with adjacent transpositions counted as one edit ("upsteram" → "upstream" is 1). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1
  const cols = b.length + 1
  const d: number[] = new Array(rows * cols)
  for (let i = 0; i < rows; i++) d[i * cols] = i
  for (let j = 0; j < cols; j++) d[j] = j
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[(i - 1) * cols + j] + 1, d[i * cols + j - 1] + 1, d[(i - 1) * cols + j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[(i - 2) * cols + j - 2] + 1)
      d[i * cols + j] = v
    }
  }
  return d[rows * cols - 1]
}

/** The candidate closest to `word`, or undefined when none is within a third of the word's length (at least 1). */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  const lower = word.toLowerCase()
  const limit = Math.max(1, Math.floor(word.length / 3))
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const dist = editDistance(lower, c.toLowerCase())
    if (dist <= limit && dist < bestDistance) {
      best = c
      bestDistance = dist
    }
  }
  return best
}

/** ` (did you mean "x"?)` or '' — ready to append to a message. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const s = suggest(word, candidates)
  return s === undefined ? '' : ` (did you mean "${s}"?)`
}
