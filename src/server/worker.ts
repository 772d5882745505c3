// A worker thread: one uWS App listening on the shared port (SO_REUSEPORT), serving the pipeline with the current
// plan. The generation's main thread sends it new configs (reload) and the drain order (stop, upgrade).
import { parentPort, workerData, threadId } from 'node:worker_threads'
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js'
import { loadUws } from './uws.js'
import { compilePlan, closePlan, type WorkerPlan } from './plan.js'
import { handleRequest } from './pipeline.js'
import { ctx } from './context.js'
import { createLogger } from '../observability/logger.js'
import { metrics } from '../observability/metrics.js'
import type { Config } from '../config/index.js'
import type { SharedBuffers } from './shared.js'

export interface WorkerData {
  index: number
  generation: number
  config: Config
  version: number
  host: string
  port: number
  embeddedSocket: string | null
  shared: SharedBuffers
}

export type ToWorker =
  | { type: 'config'; config: Config; version: number }
  | { type: 'drain'; timeoutMs: number }

export type FromWorker =
  | { type: 'listening'; port: number }
  | { type: 'listen-failed'; message: string }
  | { type: 'reloaded'; version: number }
  | { type: 'reload-failed'; version: number; message: string }
  | { type: 'drained'; cut: number }

const data = workerData as WorkerData
const port = parentPort!
const uws = loadUws()
const { logger, flush } = createLogger({ level: data.config.log.level, bindings: { worker: data.index, gen: data.generation, tid: threadId } })
ctx.logger = logger
ctx.inflight = new Int32Array(data.shared.inflight)

let plan: WorkerPlan = compilePlan(data.config, data.version, data.embeddedSocket)
// counters go to this worker's stripe of the generation's metrics buffer; pool gauges are sampled once a second
metrics.attach(data.shared.metrics, data.index)
metrics.startSampling(() => plan.upstreams.values())
// uWS adds a "uWebSockets: 20" header to every response unless told to be silent
;(uws as unknown as { _cfg(s: string): void })._cfg('silent')
const app: TemplatedApp = uws.App()
// the closure reads the current plan at request start; a reload replaces `plan` between requests
app.any('/*', (res, req) => handleRequest(res, req, plan))
let token: us_listen_socket | null = null

function listen(p: number): void {
  app.listen(data.host, p, (t) => {
    if (!t) return post({ type: 'listen-failed', message: `could not listen on ${data.host}:${p}` })
    token = t
    post({ type: 'listening', port: uws.us_socket_local_port(t) })
  })
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
      const old = plan
      plan = next
      logger.level = m.config.log.level
      // the old pools finish the requests that began on them, then close
      void closePlan(old)
      return post({ type: 'reloaded', version: m.version })
    }
    case 'drain':
      return drain(m.timeoutMs)
  }
})

/** Stop accepting, let in-flight requests finish up to the deadline, then close what is left and report. */
function drain(timeoutMs: number): void {
  metrics.stopSampling()
  ctx.draining = true
  if (token !== null) {
    uws.us_listen_socket_close(token)
    token = null
  }
  const deadline = performance.now() + timeoutMs
  const check = () => {
    if (ctx.local > 0 && performance.now() < deadline) return void setTimeout(check, 25)
    const cut = ctx.local
    // uWS must be closed before the thread exits, or the process aborts; closing fires onAborted for what is left
    ;(app as unknown as { close(): void }).close()
    void closePlan(plan).finally(() => {
      for (const u of plan.upstreams.values()) u.destroy()
      flush()
      post({ type: 'drained', cut })
      port.close()
    })
  }
  check()
}

listen(data.port)
