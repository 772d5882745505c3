// The access line, serialised by hand instead of through pino's generic path (serializer and stringifier lookups,
// key escaping, redaction hooks per field): the prefix (level) and the thread's bindings are taken from the logger
// once, a line is then one pass over the fields with JSON.stringify per value, written to the same destination
// (sonic-boom: whole lines, atomic writes, shared with every other line of the thread). The bytes are pino's:
// {"level":"info","time":"…"<bindings>,<fields, undefined ones left out>}\n — test/observability/access-line.test.ts
// compares the two. The access fields hold no credential (the redacted paths are headers, key and token).
import pino, { type Logger } from 'pino'

interface PinoInternals {
  [k: symbol]: unknown
}

const S = pino.symbols as unknown as Record<string, symbol>

export class AccessWriter {
  readonly #logger: Logger
  readonly #head: string
  readonly #time: () => string
  readonly #chindings: string
  readonly #end: string
  readonly #stream: { write(s: string): unknown }
  /** pino's isoTime, rendered here once per millisecond (many lines share one at load): same bytes */
  readonly #iso: boolean
  #ms = -1
  #stamp = ''

  constructor(logger: Logger) {
    const l = logger as unknown as PinoInternals
    this.#logger = logger
    this.#head = (l[S.lsCacheSym] as Record<number, string>)[30]
    this.#time = l[S.timeSym] as () => string
    this.#chindings = l[S.chindingsSym] as string
    this.#end = l[S.endSym] as string
    this.#stream = l[S.streamSym] as { write(s: string): unknown }
    this.#iso = this.#time === pino.stdTimeFunctions.isoTime
  }

  #timestamp(): string {
    if (!this.#iso) return this.#time()
    const ms = Date.now()
    if (ms !== this.#ms) {
      this.#ms = ms
      this.#stamp = ',"time":"' + new Date(ms).toISOString() + '"'
    }
    return this.#stamp
  }

  /** One access line at level info (nothing when the logger's level is above info). */
  write(fields: Record<string, unknown>): void {
    if (!this.#logger.isLevelEnabled('info')) return
    let line = this.#head + this.#timestamp() + this.#chindings
    for (const key in fields) {
      const v = fields[key]
      if (v === undefined) continue
      line += ',"' + key + '":' + (typeof v === 'number' && !Number.isFinite(v) ? 'null' : JSON.stringify(v))
    }
    this.#stream.write(line + this.#end)
  }
}
