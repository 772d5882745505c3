// One pipeline stage, or a few, run on their own over a real socket: a real uWS app in the test's process on a free
// port, a WorkerPlan compiled from a YAML config as the worker compiles it, the worker's context (a bucket table,
// the in-flight word, a logger whose lines the test reads). The test's `run` takes each request through the
// stages it names; a request that gets through all of them (CONTINUE) is answered 200 with `view(s)` as JSON —
// what the stages decided — so a test asserts a stage's decisions, and its own replies, over HTTP.
import { Writable } from 'node:stream'
import pino from 'pino'
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js'
import { request, type Dispatcher } from 'undici'
import { parseConfig, formatIssue, type Config } from '../../src/config/index.js'
import { compilePlan, closePlan, type WorkerPlan } from '../../src/server/plan.js'
import { RequestState, Next } from '../../src/server/request-state.js'
import { ctx } from '../../src/server/context.js'
import { replyJson } from '../../src/server/reply.js'
import { BucketTable } from '../../src/limiter/table.js'
import { loadUws } from '../../src/server/uws.js'
import type { Logger } from '../../src/observability/logger.js'
import { AccessWriter } from '../../src/observability/access-line.js'
import type { LogLine } from './proxy.js'

export { Next, RequestState }

/**
 * Takes a request through stages: returns CONTINUE when every stage let it go on (the harness answers with the
 * view), else what the stage that stopped it returned (that stage answered, or will). `done` resumes a PENDING one.
 */
export type StageRun = (s: RequestState, req: HttpRequest, done: (s: RequestState) => void) => Next

export interface StageHarness {
  readonly port: number
  readonly config: Config
  readonly plan: WorkerPlan
  /** every line the worker's logger wrote (access lines included), parsed */
  readonly logs: LogLine[]
  /** the first log line (past or future) matching `pred` */
  waitLog(pred: (l: LogLine) => boolean): Promise<LogLine>
  /** the last RequestState the app handled */
  last: RequestState | null
  url(path: string): string
  /** a request to the app: status, headers, body text and, for the harness's own 200, the view as JSON */
  send(path: string, opts?: Partial<Omit<Dispatcher.RequestOptions, 'origin' | 'path'>>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string; view: Record<string, unknown> }>
}

const DEFAULT_VIEW = (s: RequestState): Record<string, unknown> => ({
  route: s.route?.path ?? null,
  upstream: s.upstream?.name ?? null,
  upstreamPath: s.upstreamPath,
  keyId: s.keyId,
  org: s.org,
  tier: s.tier,
  scale: s.scale,
  clientIp: s.clientIp,
  requestId: s.requestId,
  traceparent: s.traceparent,
  headers: s.headers,
  query: s.query,
  shape: s.shape,
  model: s.model,
  promptTokens: s.promptTokens,
  costTokens: s.costTokens,
  charged: s.charged,
  budgetCharged: s.budgetCharged,
  budgetPico: s.budgetPico,
  responseHeaders: s.responseHeaders,
  inflightTaken: s.inflightTaken,
  cacheStatus: s.cacheStatus,
})

/** Compile `yaml` (a whole config) and serve `run` on a real uWS app; everything is closed at the test's end. */
export async function stageHarness(tt: { teardown(fn: () => unknown): void }, yaml: string, run: StageRun, view = DEFAULT_VIEW): Promise<StageHarness> {
  const r = parseConfig(yaml, 'stage.yaml', {})
  if (!r.ok) throw new Error(`stage config: ${r.issues.map((i) => formatIssue(i)).join('\n')}`)
  const config = r.config
  const plan = compilePlan(config, 1, null)
  const logs: LogLine[] = []
  let waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue
        const l = JSON.parse(line) as LogLine
        logs.push(l)
        waiters = waiters.filter((w) => (w.pred(l) ? (w.resolve(l), false) : true))
      }
      cb()
    },
  })
  const saved = { ...ctx }
  ctx.logger = pino({ level: 'debug', base: null }, sink) as unknown as Logger
  ctx.access = new AccessWriter(ctx.logger)
  ctx.table = BucketTable.create(config.limits_table.capacity, config.limits_table.when_full)
  ctx.inflight = new Int32Array(new SharedArrayBuffer(8))
  ctx.local = 0
  ctx.cluster = null
  ctx.cache = null

  const answer = (s: RequestState) => {
    replyJson(s, 200, JSON.stringify(view(s)), null)
  }
  const h: StageHarness = {
    port: 0,
    config,
    plan,
    logs,
    last: null,
    waitLog(pred) {
      const hit = logs.find(pred)
      return hit !== undefined ? Promise.resolve(hit) : new Promise((resolve) => waiters.push({ pred, resolve }))
    },
    url: (p) => `http://127.0.0.1:${h.port}${p}`,
    async send(p, opts = {}) {
      const res = await request(h.url(p), { ...opts, method: opts.method ?? 'GET' })
      const text = await res.body.text()
      let v: Record<string, unknown> = {}
      if (res.statusCode === 200 && res.headers['content-type'] === 'application/json') {
        try {
          v = JSON.parse(text) as Record<string, unknown>
        } catch {
          v = {}
        }
      }
      return { status: res.statusCode, headers: res.headers as Record<string, string | string[] | undefined>, text, view: v }
    },
  }
  const uws = loadUws()
  ;(uws as unknown as { _cfg(s: string): void })._cfg('silent')
  const app: TemplatedApp = uws.App()
  app.any('/*', (res: HttpResponse, req: HttpRequest) => {
    const s = new RequestState(res, plan)
    h.last = s
    if (run(s, req, answer) === Next.CONTINUE) answer(s)
  })
  let token: us_listen_socket | null = null
  app.listen('127.0.0.1', 0, (tk) => {
    if (tk) token = tk
  })
  if (token === null) throw new Error('stage harness: uWS could not listen on 127.0.0.1')
  ;(h as { port: number }).port = uws.us_socket_local_port(token)
  tt.teardown(async () => {
    uws.us_listen_socket_close(token!)
    ;(app as unknown as { close(): void }).close()
    await closePlan(plan)
    Object.assign(ctx, saved)
  })
  return h
}

/** A config around `extra` (limits, keys, upstreams, routes …) with the access log on. */
export function stageConfig(extra: string): string {
  return `listen: 127.0.0.1:0
workers: 1
log: { level: info }
${extra}`
}
