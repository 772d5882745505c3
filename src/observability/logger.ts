// One pino logger per thread, bindings set once (no child logger per request). Worker threads share stdout:
// sonic-boom groups whole lines into writes of at most maxWrite bytes, and 4096 = PIPE_BUF keeps each write
// atomic on a pipe (journald, docker), so lines from different threads never interleave.
import pino, { type Logger, type LevelWithSilent } from 'pino'

export type { Logger }

export interface LoggerOptions {
  level: LevelWithSilent
  bindings: Record<string, unknown>
  /** tests and the CLI pass a stream; default is fd 1 */
  fd?: number
  /** write each line at once (tests that read the file back); default: buffered, asynchronous */
  sync?: boolean
}

export function createLogger(opts: LoggerOptions): { logger: Logger; flush: () => void } {
  const dest = pino.destination({ fd: opts.fd ?? 1, sync: opts.sync ?? false, minLength: 0, maxWrite: 4096 })
  const logger = pino(
    {
      level: opts.level,
      base: opts.bindings,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // never let a credential reach a log line, whatever a caller passes by mistake
      redact: { paths: ['headers.authorization', 'headers["x-api-key"]', 'headers["x-goog-api-key"]', 'key', 'token'], censor: '***' },
    },
    dest,
  )
  return {
    logger,
    flush: () => {
      try {
        dest.flushSync()
      } catch {
        // EAGAIN on a full pipe or a closed stdout: losing the tail of the log beats hanging the exit
      }
    },
  }
}
