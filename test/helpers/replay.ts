// A replay upstream for recorded provider responses (../shared/recorded, see its SOURCES.md): a node:http server
// that answers each request with the recording its `x-replay-file` header names (`x-replay`: the case, for `seen`), byte for byte, in the pieces a real
// server would write (SSE event by event; a JSON body in two parts), gzip-compressed whatever the request accepted
// when `x-replay-gzip: 1` is set — a provider behind a CDN that compresses anyway.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { existsSync, readFileSync } from 'node:fs'
import { once } from 'node:events'
import { gzipSync } from 'node:zlib'
import path from 'node:path'
import { ROOT } from './proxy.js'

/** ../shared/recorded beside the checkout; LEAKY_RECORDED_DIR points elsewhere (a git worktree, which sits apart). */
export const RECORDED = path.resolve(ROOT, process.env.LEAKY_RECORDED_DIR ?? '../shared/recorded')

/** The recordings folder, or a clear failure: CI has it beside the checkout. */
export function recordedDir(): string {
  if (!existsSync(path.join(RECORDED, 'SOURCES.md'))) {
    throw new Error(`recorded provider responses not found at ${RECORDED}: these tests replay ../shared/recorded (beside the checkout, as CI lays it out; LEAKY_RECORDED_DIR=DIR to use another)`)
  }
  return RECORDED
}

export function recording(file: string): Buffer {
  return readFileSync(path.join(recordedDir(), file))
}

/** What the replay server saw of each request: its headers, by the case name it replayed. */
export interface Seen {
  headers: IncomingMessage['headers']
  path: string
  body: string
}

export interface Replay {
  server: Server
  origin: string
  seen: Map<string, Seen>
  close(): Promise<void>
}

/** Split SSE bytes after each blank line (LF or CRLF framing); what follows the last one is a piece of its own. */
export function ssePieces(buf: Buffer): Buffer[] {
  const out: Buffer[] = []
  let from = 0
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] !== 0x0a) continue
    const lf = i + 1 < buf.length && buf[i + 1] === 0x0a
    const crlf = i + 2 < buf.length && buf[i + 1] === 0x0d && buf[i + 2] === 0x0a
    if (!lf && !crlf) continue
    const end = i + (lf ? 2 : 3)
    out.push(buf.subarray(from, end))
    from = end
    i = end - 1
  }
  if (from < buf.length) out.push(buf.subarray(from))
  return out
}

export async function startReplay(): Promise<Replay> {
  const seen = new Map<string, Seen>()
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const name = String(req.headers['x-replay'] ?? '')
      seen.set(name, { headers: req.headers, path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') })
      const file = String(req.headers['x-replay-file'] ?? '')
      if (file === '' || file.includes('..') || !existsSync(path.join(RECORDED, file))) {
        res.writeHead(400, { 'content-type': 'application/json' })
        res.end('{"error":{"message":"no such recording","type":"invalid_request_error"}}')
        return
      }
      const body = recording(file)
      const sse = file.endsWith('.sse')
      const type = !sse ? 'application/json' : file.startsWith('qwen/native') ? 'text/event-stream;charset=UTF-8' : 'text/event-stream'
      const gzip = req.headers['x-replay-gzip'] === '1'
      if (gzip) {
        const z = gzipSync(body)
        res.writeHead(200, { 'content-type': type, 'content-encoding': 'gzip', 'content-length': String(z.length) })
        // cut inside the compressed stream: the proxy's decoder must carry state across reads
        const cut = Math.floor(z.length / 3)
        res.write(z.subarray(0, cut))
        res.end(z.subarray(cut))
        return
      }
      if (!sse) {
        res.writeHead(200, { 'content-type': type, 'content-length': String(body.length) })
        const half = Math.floor(body.length / 2)
        res.write(body.subarray(0, half))
        res.end(body.subarray(half))
        return
      }
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' })
      for (const p of ssePieces(body)) res.write(p)
      res.end()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  return {
    server,
    origin: `http://127.0.0.1:${port}`,
    seen,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}
