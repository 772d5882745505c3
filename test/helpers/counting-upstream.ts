// An OpenAI-shaped upstream started by a test: counts the calls it gets, can hold its answers until the test
// releases them (so concurrent requests are all in flight at once), and answers a chat completion either as JSON
// or as an SSE stream (with the usage chunk when the request asks for include_usage).
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface UpstreamCall {
  path: string
  body: Record<string, unknown> | null
  /** the response was cut because the proxy closed the connection before it ended */
  aborted: boolean
  finished: boolean
}

export interface CountingUpstream {
  origin: string
  calls: UpstreamCall[]
  /** hold answers until release() */
  hold(): void
  release(): void
  /** resolves once `n` calls have arrived */
  arrived(n: number): Promise<void>
  /** extra response headers, status override for the next answers */
  headers: Record<string, string>
  status: number
  /** ms between two SSE events (0: as fast as possible) */
  gapMs: number
  close(): Promise<void>
}

export const EVENTS = ['Hello', ' from', ' the', ' counting', ' upstream', '.']

export async function startCountingUpstream(): Promise<CountingUpstream> {
  let held = false
  let waiting: Array<() => void> = []
  let arrivals: Array<{ n: number; resolve: () => void }> = []
  const calls: UpstreamCall[] = []
  const up: CountingUpstream = {
    origin: '',
    calls,
    headers: {},
    status: 200,
    gapMs: 0,
    hold: () => {
      held = true
    },
    release: () => {
      held = false
      const w = waiting
      waiting = []
      for (const f of w) f()
    },
    arrived: (n) => (calls.length >= n ? Promise.resolve() : new Promise((resolve) => arrivals.push({ n, resolve }))),
    close: () => new Promise((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8')
      const call: UpstreamCall = { path: req.url ?? '', body: text === '' ? null : (JSON.parse(text) as Record<string, unknown>), aborted: false, finished: false }
      calls.push(call)
      res.on('close', () => {
        if (!res.writableFinished) call.aborted = true
      })
      arrivals = arrivals.filter((a) => (calls.length >= a.n ? (a.resolve(), false) : true))
      const answer = () => respond(call, res, up)
      if (held) waiting.push(answer)
      else answer()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  up.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return up
}

function respond(call: UpstreamCall, res: http.ServerResponse, up: CountingUpstream): void {
  const b = call.body ?? {}
  const id = `chatcmpl-${calls(up)}`
  if (b.stream === true) {
    res.writeHead(up.status, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...up.headers })
    const chunk = (delta: Record<string, unknown>, finish: string | null) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', model: 'gpt-4o-mini', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    let i = 0
    const next = () => {
      if (res.destroyed) return
      if (i < EVENTS.length) {
        res.write(chunk({ content: EVENTS[i++] }, null))
        if (up.gapMs > 0) setTimeout(next, up.gapMs)
        else setImmediate(next)
        return
      }
      res.write(chunk({}, 'stop'))
      const so = b.stream_options as { include_usage?: boolean } | undefined
      if (so?.include_usage === true) {
        res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 } })}\n\n`)
      }
      res.end('data: [DONE]\n\n')
      call.finished = true
    }
    next()
    return
  }
  const body = JSON.stringify({
    id, object: 'chat.completion', model: 'gpt-4o-mini',
    choices: [{ index: 0, message: { role: 'assistant', content: EVENTS.join('') }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 },
    path: call.path,
  })
  res.writeHead(up.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...up.headers })
  res.end(body)
  call.finished = true
}

// the answer names how many calls came before it: two upstream calls give two different bodies, so a test that
// compares bodies also sees whether they came from one call
function calls(up: CountingUpstream): number {
  return up.calls.length
}
