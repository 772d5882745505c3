// Large prompts are tokenized off the uWS worker's event loop: the BPE over a 200 KB prompt takes tens of
// milliseconds, during which every other connection of that worker would stall.
//
// Where the pool lives: one small pool per uWS worker thread, created lazily on the first large body (workerPool),
// with one thread. A piscina instance cannot be shared across threads, and a single pool on the generation's main
// thread would put a second hop (worker → main → tokenizer → main → worker) and the main thread's event loop (admin,
// metrics, Redis sync) on the path of every large request. Most deployments never see a 32 KiB prompt, and then no
// tokenizer thread is ever started; one that does pays one mostly idle thread per worker.
import { fileURLToPath } from 'node:url'
import { Piscina } from 'piscina'
import { countTokensSegmented } from './delivered.js'
import { estimateWithPrompt, framingTokens, type EstimateHeaders, type TokenEstimate } from './estimate.js'
import { readPrompt, type ApiShape } from './prompt.js'

/** Prompt text (characters) above which counting goes to the pool. Below it the BPE takes well under a millisecond. */
export const POOL_THRESHOLD = 32768

const WORKER = fileURLToPath(new URL('./tokenizer-worker.js', import.meta.url))

export class TokenizerPool {
  private readonly pool: Piscina<string, number>
  private closed = false

  constructor(opts: { threads: number }) {
    const n = opts.threads > 0 ? Math.floor(opts.threads) : 1
    // threads stay up once started: loading the o200k tables costs more than the counts they serve
    this.pool = new Piscina({ filename: WORKER, minThreads: n, maxThreads: n, idleTimeout: Infinity })
  }

  /** Rejects once closed: piscina itself would start its threads again after close. */
  count(text: string): Promise<number> {
    return this.closed ? Promise.reject(new Error('tokenizer pool is closed')) : this.pool.run(text)
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.closed = true
    return this.pool.close()
  }
}

let lazy: TokenizerPool | null = null

/** This thread's pool, started on first use. */
export function workerPool(): TokenizerPool {
  if (lazy === null) lazy = new TokenizerPool({ threads: 1 })
  return lazy
}

/** Stop this thread's pool if it was ever started (drain, before the thread exits). */
export function closeWorkerPool(): Promise<void> {
  const p = lazy
  lazy = null
  return p === null ? Promise.resolve() : p.close()
}

export interface AsyncEstimateOptions {
  /** the pool to use; this thread's lazy pool when absent */
  pool?: TokenizerPool
  /** prompt characters above which the pool counts; POOL_THRESHOLD when absent */
  threshold?: number
}

/**
 * estimateTokens, with the prompt of a large body counted in the pool. Small bodies are counted inline and the
 * promise is already settled. Never rejects: should the pool fail, the prompt is estimated at 4 characters a token
 * (the account stage corrects it from the reported usage).
 */
export function estimateTokensAsync(shape: ApiShape, body: unknown, path: string, headers: EstimateHeaders,
  defaultMaxOutput: number, opts?: AsyncEstimateOptions): Promise<TokenEstimate> {
  const info = readPrompt(shape, body, path)
  const threshold = opts?.threshold ?? POOL_THRESHOLD
  if (shape === 'other' || info.text.length <= threshold) {
    const prompt = shape === 'other' ? 0 : countTokensSegmented(info.text) + framingTokens(info)
    return Promise.resolve(estimateWithPrompt(shape, body, info, prompt, headers, defaultMaxOutput))
  }
  const text = info.text
  const framing = framingTokens(info)
  const pool = opts?.pool ?? workerPool()
  return pool.count(text).then(
    (n) => estimateWithPrompt(shape, body, info, n + framing, headers, defaultMaxOutput),
    () => estimateWithPrompt(shape, body, info, Math.ceil(text.length / 4) + framing, headers, defaultMaxOutput),
  )
}
