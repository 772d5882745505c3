// One ledger row as it travels from a worker to the generation's main thread and into SQLite: a flat array
// (structured clone copies it cheaply, and the SQLite statement binds it positionally), the dimensions first, then
// the sums. Minutes are epoch minutes (UTC), the cost is micro-USD: each request's cost rounded as its access line
// shows it (cost_usd has six places), so the ledger's totals are exactly the sums of the access lines.
export type LedgerRow = [
  minute: number, key: string, org: string, model: string, route: string, statusClass: number,
  requests: number, tokensPrompt: number, tokensCompletion: number, tokensCached: number, tokensThoughts: number,
  tokensTotal: number, costMicro: number, unpriced: number,
]

/** Positions in a LedgerRow. */
export const ROW_FIELDS = {
  minute: 0, key: 1, org: 2, model: 3, route: 4, statusClass: 5,
  requests: 6, tokensPrompt: 7, tokensCompletion: 8, tokensCached: 9, tokensThoughts: 10, tokensTotal: 11, costMicro: 12, unpriced: 13,
} as const

/** Worker → generation main thread: the rows this worker summed since its last batch. */
export interface UsageBatch {
  type: 'usage'
  rows: LedgerRow[]
}

/** The key a row is summed under: its dimensions. */
export function rowKey(minute: number, key: string, org: string, model: string, route: string, statusClass: number): string {
  return `${minute}\0${key}\0${org}\0${model}\0${route}\0${statusClass}`
}

/** Add b's sums into a (same dimensions). */
export function addInto(a: LedgerRow, b: LedgerRow): void {
  for (let i = ROW_FIELDS.requests; i <= ROW_FIELDS.unpriced; i++) (a[i] as number) += b[i] as number
}
