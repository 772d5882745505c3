// Per-request behaviour of the stub: the server's options, overridden by `x-stub-*` request headers so one stub
// can serve a test that needs a slow stream next to one that needs a 429.
import type { IncomingHttpHeaders } from 'node:http'

/** What `x-stub-error` asks for. `status` answers `faultStatus` with a provider-shaped error body. */
export type Fault = 'none' | 'status' | 'reset' | 'stall' | 'cut'

/** The server-wide defaults, normalised once from StubOptions. */
export interface KnobDefaults {
  seed: number
  /** a seed was given: ids and timestamps become deterministic too */
  seeded: boolean
  ttftMs: number
  tokensPerSecond: number
  jitterMs: number
}

export class Knobs {
  seed: number
  seeded: boolean
  ttftMs: number
  tokensPerSecond: number
  jitterMs: number
  /** x-stub-tokens, or -1 */
  tokens: number
  /** x-stub-thoughts, or -1 */
  thoughts: number
  fault: Fault
  faultStatus: number
  /** set when x-stub-error held something the stub does not know: answered as a 400 so a typo is loud */
  faultUnknown: string

  constructor(d: KnobDefaults, h: IncomingHttpHeaders) {
    const seed = h['x-stub-seed']
    this.seeded = d.seeded || typeof seed === 'string'
    this.seed = typeof seed === 'string' ? Number(seed) >>> 0 : d.seed
    this.ttftMs = num(h['x-stub-ttft-ms'], d.ttftMs)
    this.tokensPerSecond = num(h['x-stub-tps'], d.tokensPerSecond)
    this.jitterMs = num(h['x-stub-jitter-ms'], d.jitterMs)
    this.tokens = Math.floor(num(h['x-stub-tokens'], -1))
    this.thoughts = Math.floor(num(h['x-stub-thoughts'], -1))
    this.fault = 'none'
    this.faultStatus = 0
    this.faultUnknown = ''
    const e = h['x-stub-error']
    if (typeof e === 'string') this.parseFault(e)
  }

  private parseFault(e: string): void {
    switch (e) {
      case 'reset':
      case 'stall':
      case 'cut':
        this.fault = e
        return
    }
    const status = Number(e)
    this.fault = 'status'
    if (Number.isInteger(status) && status >= 400 && status <= 599) {
      this.faultStatus = status
    } else {
      this.faultStatus = 400
      this.faultUnknown = e
    }
  }
}

function num(v: string | string[] | undefined, dflt: number): number {
  if (typeof v !== 'string') return dflt
  const n = Number(v)
  return Number.isFinite(n) && n >= 0 ? n : dflt
}
