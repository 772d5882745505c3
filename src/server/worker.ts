// A worker thread: one uWS App listening on the shared port (SO_REUSEPORT), serving the pipeline with the current
// plan. The generation's main thread sends it new configs (reload) and the drain order (stop, upgrade).
import type { BudgetAlertMessage } from '../spend/budget-alerts.js'
import { parentPort, workerData, threadId, type MessagePort } from 'node:worker_threads'
import type { HttpRequest, HttpResponse, RecognizedString } from 'uWebSockets.js'
import { loadUws } from './uws.js'
import { Listener } from './listener.js'
import { BucketTable } from '../limiter/table.js'
import { compilePlan, closePlan, type WorkerPlan } from './plan.js'
import { handleRequest } from './pipeline.js'
import { ctx } from './context.js'
import { createLogger } from '../observability/logger.js'
import { metrics } from '../observability/metrics.js'
import type { Config } from '../config/index.js'
import type { SharedBuffers } from './shared.js'
import { ClusterLimiter, clusterPolicies } from '../limiter/cluster.js'
import { connectCache } from './stages/cache.js'
import { setRuntimeKeys } from '../identity/runtime-keys.js'
import type { KeyRow } from '../store/key-store.js'
import { connectSink, flushSpans } from '../tracing/sink.js'
import { attachTargets } from '../traffic/target-table.js'
import type { SpanBatch } from '../tracing/span-data.js'
import { connectLedger, flushLedger } from '../ledger/outbox.js'
import { AccessWriter } from '../observability/access-line.js'
import type { UsageBatch } from '../ledger/row.js'
import { EXIT } from '../errors.js'

export interface WorkerData {
  index: number
  /** worker threads in this generation (lease mode shares a proxy's lease cap among them) */
  workers: number
  generation: number
  config: Config
  version: number
  host: string
  port: number
  /** listen_plain beside a TLS listener: where it binds (port resolved by the generation), or null */
  plain: { host: string; port: number } | null
  embeddedSocket: string | null
  shared: SharedBuffers
  /** false: start everything but wait for a `listen` message (an upgrade restores the buckets first) */
  listenAtStart: boolean
  /** this worker's port to the response cache owner on the main thread (src/cache/owner.ts) */
  cachePort: MessagePort | null
  /** the runtime keys at the time this worker starts (later changes come as `keys` messages) */
  runtimeKeys: KeyRow[]
}

export type ToWorker =
  | { type: 'config'; config: Config; version: number }
  /** quietMs: how long no request may have arrived before idle connections are closed (see drain) */
  | { type: 'drain'; timeoutMs: number; quietMs: number }
  | { type: 'stats' }
  | { type: 'listen' }
  /** the runtime keys changed: the whole list, which replaces this thread's table */
  | { type: 'keys'; rows: KeyRow[] }
  /** test hook (the supervisor sends it only with test hooks on): fail as an uncaught bug would */
  | { type: 'crash' }

export type FromWorker =
  /** ready to listen (listenAtStart: false) */
  | { type: 'started' }
  | { type: 'listening'; port: number }
  | { type: 'listen-failed'; message: string }
  /** tls: the listener took new certificate files (or TLS was switched on or off) */
  | { type: 'reloaded'; version: number; tls: boolean }
  | { type: 'reload-failed'; version: number; message: string }
  | { type: 'drained'; cut: number }
  | { type: 'stats'; requests: number }
  /** finished spans for the generation's exporter (src/tracing/) */
  | SpanBatch
  /** usage rows for the generation's ledger writer (src/ledger/) */
  | UsageBatch
  /** a budget reached an alert_at share (src/spend/budget-level.ts) */
  | BudgetAlertMessage

const data = workerData as WorkerData
const port = parentPort!
const uws = loadUws()
const { logger, flush } = createLogger({ level: data.config.log.level, bindings: { worker: data.index, gen: data.generation, tid: threadId } })
ctx.logger = logger
ctx.access = new AccessWriter(logger)
ctx.inflight = new Int32Array(data.shared.inflight)
ctx.table = data.shared.buckets === null ? null : BucketTable.attach(data.shared.buckets)
ctx.cache = connectCache(data.cachePort)

setRuntimeKeys(data.runtimeKeys)
// before the first plan: its balancers find their targets' slots in the generation's table
attachTargets(data.shared.targets)
let plan: WorkerPlan = compilePlan(data.config, data.version, data.embeddedSocket)
// counters go to this worker's stripe of the generation's metrics buffer; pool gauges are sampled once a second
metrics.attach(data.shared.metrics, data.index)
ctx.cluster = redisFor(data.config)
metrics.startSampling(() => plan.upstreams.values())
connectSink(post)
connectLedger(post)
// uWS adds a "uWebSockets: 20" header to every response unless told to be silent
;(uws as unknown as { _cfg(s: string): void })._cfg('silent')
// the proxy listener (TLS when configured) and the optional plain one beside it, serving the same pipeline
const main = new Listener(uws, data.host, data.config.tls, onRequest)
const plainListener = data.plain === null ? null : new Listener(uws, data.plain.host, undefined, onRequest)
/** requests started on this worker (for `leaky status`) */
let requests = 0
let draining = false
/** the last reload being applied (a reload may wait for a new Redis connection) */
let reloads: Promise<void> = Promise.resolve()
/** when the last request arrived during a drain */
let lastArrival = 0
// the closure reads the current plan at request start; a reload replaces `plan` between requests
function onRequest(res: HttpResponse, req: HttpRequest): void {
  requests++
  if (draining) closeAfter(res)
  handleRequest(res, req, plan)
}

// During a drain every response must tell keep-alive clients to go: they reconnect and land on the next
// generation's listeners. uWS writes `Connection: close` itself only from end(body, true), and in this uWS build
// that call writes the header into the body of a response already streamed with write() (measured: "chunk1Connection:
// close"), so the header goes out with the status line instead. uWS then keeps the socket open; the client closes it.
let resProto: HttpResponse | null = null
function closeAfter(res: HttpResponse): void {
  lastArrival = performance.now()
  resProto ??= Object.getPrototypeOf(res) as HttpResponse
  ;(res as { writeStatus: HttpResponse['writeStatus'] }).writeStatus = writeStatusClosing
}
function writeStatusClosing(this: HttpResponse, status: RecognizedString): HttpResponse {
  resProto!.writeStatus.call(this, status)
  return resProto!.writeHeader.call(this, 'connection', 'close')
}

// A bug that throws out of a handler must cost this worker only: close uWS first (a thread that exits with uWS
// open aborts the whole process, exit 134), give back the admit slots its requests held, and let the generation
// start a replacement. The other workers' connections are untouched.
process.on('uncaughtException', (err) => {
  logger.fatal({ msg: 'worker crashed', err: err.message, stack: err.stack })
  main.close()
  plainListener?.close()
  if (ctx.local > 0) Atomics.sub(ctx.inflight, 0, ctx.local)
  flushLedger()
  flush()
  process.exit(EXIT.WORKER_CRASHED)
})

/**
 * The Redis backend for `config`: this thread's current one when the redis section is unchanged (the connection and
 * lease credit stay; per-limit policies are updated), a new one when it changed, null without a redis section.
 */
function redisFor(config: Config): ClusterLimiter | null {
  const cur = ctx.cluster
  const section = config.redis
  if (section === undefined) return null
  if (cur !== null && cur.section === JSON.stringify(section)) {
    cur.setPolicies(clusterPolicies(config.limits))
    return cur
  }
  return new ClusterLimiter(section, clusterPolicies(config.limits), ctx.table!, logger, data.workers)
}

/**
 * Run `then` once `cluster` has its first connection (at most 2 s). A new thread listens, and a reload that brings a
 * new Redis connection swaps its plan, only then: otherwise the first requests would be decided by on_error only
 * because the connection was still being made (and, after a reload, partly by Redis and partly by on_error).
 */
function whenConnected(cluster: ClusterLimiter | null, then: () => void): void {
  if (cluster === null || cluster.redis.up) return then()
  let done = false
  const go = () => {
    if (done) return
    done = true
    clearTimeout(timer)
    if (!cluster.redis.up) logger.warn({ msg: 'Redis has not answered yet; cluster limits follow on_error until it does' })
    then()
  }
  const timer = setTimeout(go, 2000)
  void cluster.redis.ready().then(go)
}

function listen(p: number): void {
  whenConnected(ctx.cluster, () => bind(p))
}

function bind(p: number): void {
  const bound = main.listen(p)
  if (bound === 0) return post({ type: 'listen-failed', message: `could not listen on ${data.host}:${p}` })
  if (plainListener !== null && plainListener.listen(data.plain!.port) === 0) {
    return post({ type: 'listen-failed', message: `could not listen on ${data.plain!.host}:${data.plain!.port} (listen_plain)` })
  }
  post({ type: 'listening', port: bound })
}

function post(m: FromWorker): void {
  port.postMessage(m)
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'config': {
      let next: WorkerPlan
      try {
        next = compilePlan(m.config, m.version, data.embeddedSocket)
      } catch (err) {
        return post({ type: 'reload-failed', version: m.version, message: (err as Error).message })
      }
      // new certificates (or TLS switched on or off) take over the port before the plan does; if they cannot,
      // nothing of this reload is applied on this worker
      const tls = main.update(m.config.tls)
      if ('error' in tls) {
        void closePlan(next)
        return post({ type: 'reload-failed', version: m.version, message: tls.error })
      }
      const cluster = redisFor(m.config)
      // reloads apply in the order they came, also when one waits for a new Redis connection
      reloads = reloads.then(() => new Promise<void>((resolve) => whenConnected(cluster, () => {
        const old = plan
        const oldCluster = ctx.cluster
        ctx.cluster = cluster
        plan = next
        logger.level = m.config.log.level
        // an upstream the reload removed keeps no open-breaker gauge behind it
        for (const name of old.upstreams.keys()) if (!next.upstreams.has(name)) metrics.breaker(name, false)
        // the old pools finish the requests that began on them, then close; so does the old Redis connection
        void closePlan(old)
        if (oldCluster !== null && oldCluster !== cluster) void oldCluster.close()
        post({ type: 'reloaded', version: m.version, tls: tls.swapped })
        resolve()
      })))
      return
    }
    case 'drain':
      return drain(m.timeoutMs, m.quietMs)
    case 'stats':
      return post({ type: 'stats', requests })
    case 'listen':
      return listen(data.port)
    case 'keys':
      return setRuntimeKeys(m.rows)
    case 'crash':
      setImmediate(crash)
      return
  }
})

function crash(): never {
  throw new Error('crash requested by the test hook')
}

/**
 * Stop accepting, let in-flight requests finish up to the deadline, then close what is left and report.
 * Requests that still arrive on open keep-alive connections are served (answered with Connection: close), not
 * refused: during an upgrade the next generation is already listening, and a 503 would be a failed request. The drain ends once nothing is in flight and no request
 * has arrived for `quietMs`: closing the idle connections is a race with a client that sends on one at that very
 * moment (its request is lost: uWS offers no graceful close of an idle HTTP connection), and a client that reuses
 * its connection within quietMs of a response is answered instead. A hand-over waits longer (the client then
 * reconnects to the next generation) than a stop (nothing would answer it anyway).
 */
function drain(timeoutMs: number, quietMs: number): void {
  metrics.stopSampling()
  draining = true
  main.stopAccepting()
  plainListener?.stopAccepting()
  const start = performance.now()
  lastArrival = start
  const deadline = start + timeoutMs
  const check = () => {
    const now = performance.now()
    if ((ctx.local > 0 || now - lastArrival < quietMs) && now < deadline) return void setTimeout(check, 25)
    const cut = ctx.local
    // uWS must be closed before the thread exits, or the process aborts; closing fires onAborted for what is left
    main.close()
    plainListener?.close()
    // leased credit goes back to the cluster buckets before this thread ends (an upgrade's next generation leases anew)
    const cluster = ctx.cluster
    ctx.cluster = null
    void Promise.allSettled([closePlan(plan), cluster?.close()]).finally(() => {
      for (const u of plan.upstreams.values()) u.destroy()
      flush()
      flushSpans()
      // before 'drained': the writer flushes once every worker has said it, so these rows make it to the file
      flushLedger()
      post({ type: 'drained', cut })
      port.close()
    })
  }
  check()
}

if (data.listenAtStart) listen(data.port)
else post({ type: 'started' })
