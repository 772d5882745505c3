// Start the real proxy (`node dist/cli/main.js start`) as a child process on free ports and parse its JSON log,
// so e2e tests talk to it over real sockets and can assert on what it logged. Its files (config, pid file, control
// socket, temp files) are in this test file's scratch directory, removed when the file's tests end (scratch.ts).
import { reapOnExit, SCRATCH_TMP } from './scratch.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import net from 'node:net'
import { request } from 'undici'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const CLI = path.join(ROOT, 'dist/cli/main.js')

export interface LogLine {
  msg?: string
  level?: string
  [k: string]: unknown
}

export class Proxy {
  readonly child: ChildProcess
  readonly lines: LogLine[] = []
  stderr = ''
  port = 0
  adminPort = 0
  #waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = []
  readonly exited: Promise<number | null>

  constructor(child: ChildProcess) {
    this.child = child
    let buf = ''
    child.stdout!.setEncoding('utf8')
    child.stdout!.on('data', (d: string) => {
      buf += d
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        if (line.trim() === '') continue
        let parsed: LogLine
        try {
          parsed = JSON.parse(line)
        } catch {
          parsed = { msg: '(non-json)', raw: line }
        }
        this.lines.push(parsed)
        this.#waiters = this.#waiters.filter((w) => (w.pred(parsed) ? (w.resolve(parsed), false) : true))
      }
    })
    child.stderr!.setEncoding('utf8')
    child.stderr!.on('data', (d: string) => (this.stderr += d))
    this.exited = once(child, 'exit').then(([code]) => code as number | null)
  }

  /** Resolve with the first log line (past or future) matching pred. */
  waitLog(pred: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    const hit = this.lines.find(pred)
    if (hit) return Promise.resolve(hit)
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for a log line; stderr: ${this.stderr}`)), timeoutMs)
      this.#waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) })
    })
  }

  access(): LogLine[] {
    return this.lines.filter((l) => l.msg === 'access')
  }

  url(p = '/'): string {
    return `http://127.0.0.1:${this.port}${p}`
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
    return this.exited
  }
}

export function writeConfig(yaml: string): string {
  const dir = mkdtempSync(path.join(SCRATCH_TMP, 'cfg-'))
  const file = path.join(dir, 'leaky.yaml')
  writeFileSync(file, yaml)
  return file
}

/** Spawn the proxy on a config (YAML text or a file path) and wait for its ready line. */
export async function startProxy(config: string, opts: { env?: NodeJS.ProcessEnv; args?: string[] } = {}): Promise<Proxy> {
  const file = config.includes('\n') ? writeConfig(config) : config
  const child = spawn(process.execPath, [CLI, 'start', '-c', file, ...(opts.args ?? [])], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  // a test that failed before its teardown stopped the proxy must not leave it serving: the master goes, and its
  // generation drains and exits when the IPC channel closes
  reapOnExit(child)
  const p = new Proxy(child)
  const ready = await Promise.race([
    // bounds a hang, not a speed: on the shared 2-core machine at load 30 a 2-worker start took 15 s
    p.waitLog((l) => l.msg === 'ready', 60_000),
    p.exited.then((code) => {
      throw new Error(`proxy exited with ${code} before ready: ${p.stderr}`)
    }),
  ])
  p.port = ready.port as number
  p.adminPort = ready.admin_port as number
  return p
}

/**
 * Start a proxy whose config needs a fixed port (`write(port)` writes the config and returns its path): freePort
 * only says the port was free a moment ago, and on a busy machine another process can take it before the proxy
 * binds, so a start that fails on exactly that is tried again on another port.
 */
export async function startOnFreePort(
  write: (port: number) => string,
  opts: { env?: NodeJS.ProcessEnv; args?: string[] } = {},
): Promise<{ proxy: Proxy; port: number; file: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const file = write(port)
    try {
      return { proxy: await startProxy(file, opts), port, file }
    } catch (err) {
      if (attempt >= 3 || !/could not listen on/.test((err as Error).message)) throw err
    }
  }
}

/** Base YAML for tests: loopback, free ports, 2 workers; add upstreams/routes/limits after it. */
export function baseConfig(extra: string): string {
  return `listen: 127.0.0.1:0
workers: 2
drain_timeout: 5s
admin: { listen: 127.0.0.1:0 }
log: { level: info }
${extra}`
}

/** The proxy's /metrics text (admin listener). */
export async function scrapeMetrics(p: Proxy): Promise<string> {
  const res = await request(`http://127.0.0.1:${p.adminPort}/metrics`)
  return res.body.text()
}

/** Sum of every sample of `name` whose labels contain `label` (or all samples). NaN when there is none. */
export function metricValue(text: string, name: string, label = ''): number {
  let sum = NaN
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + ' ') && !line.startsWith(name + '{')) continue
    if (label !== '' && !line.includes(label)) continue
    const v = Number(line.slice(line.lastIndexOf(' ') + 1))
    sum = Number.isNaN(sum) ? v : sum + v
  }
  return sum
}


/** A TCP port nothing listens on right now (for configs that need a fixed one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

/** What a bulkhead or shedding test needs of one answer: its status, the error body's code (null for the
 * upstream's own body) and Retry-After. */
export interface Answer {
  status: number
  code: string | null
  retryAfter: unknown
}

/** One request on a connection of its own (`reset`), so concurrent requests spread over the proxy's workers. */
export async function answer(url: string, opts: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Answer> {
  const r = await request(url, { reset: true, headers: opts.headers, signal: opts.signal })
  const text = await r.body.text()
  let code: string | null = null
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? null
  } catch {
    // the upstream's plain body
  }
  return { status: r.statusCode, code, retryAfter: r.headers['retry-after'] }
}
