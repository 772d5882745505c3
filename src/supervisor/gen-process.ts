// The master's handle on one generation process: fork it, talk to it over IPC (requests carry an id, answers
// resolve the matching promise), and know when it is ready, draining or gone. Plumbing only; what to do with a
// generation is master.ts.
import { fork, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { FromGeneration, GenerationInit, GenerationStatus, ReloadResult, Snapshot, ToGeneration } from './protocol.js'

const CHILD = fileURLToPath(new URL('./child.js', import.meta.url))

export type ReadyResult =
  | { ok: true }
  | { ok: false; message: string; errors: string[] }

type Answer = Extract<FromGeneration, { id: number }>

function isAnswer(m: FromGeneration): m is Answer {
  return 'id' in m
}

export class GenerationProcess extends EventEmitter {
  readonly number: number
  readonly child: ChildProcess
  readonly pid: number
  readonly startedAt = Date.now()
  state: 'starting' | 'serving' | 'draining' | 'exited' = 'starting'
  readyAt = 0
  port = 0
  adminPort = 0
  workers = 0
  /** the latest periodic copy of its buckets */
  lastSnapshot: Snapshot | null
  /** a drain was asked for: its exit is expected */
  stopAsked = false
  cut = 0
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly #pending = new Map<number, (m: Answer | null) => void>()
  #nextId = 1
  #ready: Promise<ReadyResult>
  #prepared: Promise<ReadyResult>

  constructor(init: GenerationInit, env: NodeJS.ProcessEnv) {
    super()
    this.number = init.generation
    this.lastSnapshot = init.snapshot
    // stdout and stderr are the master's: log lines of every generation go to the same place (journald, docker)
    this.child = fork(CHILD, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env })
    this.pid = this.child.pid ?? 0
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.state = 'exited'
        for (const r of this.#pending.values()) r(null)
        this.#pending.clear()
        resolve({ code, signal })
      })
    })
    let prepared: (r: ReadyResult) => void = () => {}
    this.#prepared = new Promise<ReadyResult>((resolve) => (prepared = resolve))
    this.#ready = new Promise<ReadyResult>((resolve) => {
      let failed: ReadyResult | null = null
      this.child.on('message', (m: FromGeneration) => {
        switch (m.type) {
          case 'prepared':
            return prepared({ ok: true })
          case 'ready':
            this.state = 'serving'
            this.readyAt = Date.now()
            this.port = m.port
            this.adminPort = m.admin_port
            this.workers = m.workers
            return resolve({ ok: true })
          case 'failed':
            failed = { ok: false, message: m.message, errors: m.errors }
            return
          case 'snapshot-tick':
            this.lastSnapshot = m.snapshot
            return
          case 'stopped':
            this.cut = m.cut
            this.emit('stopped', m.cut)
            return
          case 'delta':
            this.emit('delta', m.base, m.final)
            return
          case 'admin-released':
            this.emit('admin-released')
            return
          case 'admin-command':
            this.emit('admin-command', m)
            return
          default: {
            if (!isAnswer(m)) return
            const r = this.#pending.get(m.id)
            this.#pending.delete(m.id)
            r?.(m)
          }
        }
      })
      void this.exited.then(({ code, signal }) => {
        const r = failed ?? { ok: false, message: `generation ${this.number} exited before it was ready (${signal ?? `code ${code}`})`, errors: [] }
        prepared(r)
        resolve(r)
      })
    })
    this.child.on('error', () => undefined)
    this.send(init)
  }

  /** Ready, or why not (start-up error, config errors, exit, or no answer within timeoutMs). */
  ready(timeoutMs: number): Promise<ReadyResult> {
    return this.#within(this.#ready, timeoutMs, 'ready')
  }

  /** A hand-over generation: started, waiting for the buckets (or why not). */
  prepared(timeoutMs: number): Promise<ReadyResult> {
    return this.#within(this.#prepared, timeoutMs, 'prepared')
  }

  #within(p: Promise<ReadyResult>, timeoutMs: number, what: string): Promise<ReadyResult> {
    let timer: NodeJS.Timeout
    const timeout = new Promise<ReadyResult>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, message: `generation ${this.number} was not ${what} within ${timeoutMs} ms`, errors: [] }), timeoutMs)
    })
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
  }

  get alive(): boolean {
    return this.state !== 'exited'
  }

  send(m: ToGeneration): void {
    if (this.child.connected) this.child.send(m)
  }

  /** Ask and wait for the answer with the same id; null if the generation exits or times out first. */
  #ask<T>(make: (id: number) => ToGeneration, pick: (m: Answer) => T | null, timeoutMs: number): Promise<T | null> {
    if (!this.alive || !this.child.connected) return Promise.resolve(null)
    const id = this.#nextId++
    return new Promise<T | null>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        resolve(null)
      }, timeoutMs)
      this.#pending.set(id, (m) => {
        clearTimeout(timer)
        resolve(m === null ? null : pick(m))
      })
      this.send(make(id))
    })
  }

  reload(timeoutMs = 30_000): Promise<ReloadResult | null> {
    return this.#ask((id) => ({ type: 'reload', id }), (m) => (m.type === 'reload-result' ? m.result : null), timeoutMs)
  }

  status(timeoutMs = 5_000): Promise<GenerationStatus | null> {
    return this.#ask((id) => ({ type: 'status', id }), (m) => (m.type === 'status' ? m.status : null), timeoutMs)
  }

  /** `handoff`: the snapshot goes to a successor; the generation measures its deltas from it. */
  snapshot(handoff: boolean, timeoutMs = 10_000): Promise<Snapshot | null> {
    return this.#ask((id) => ({ type: 'snapshot', id, handoff }), (m) => (m.type === 'snapshot' ? m.snapshot : null), timeoutMs)
  }

  promote(timeoutMs = 10_000): Promise<{ port: number; error: string | null } | null> {
    return this.#ask((id) => ({ type: 'promote', id }), (m) => (m.type === 'admin' ? { port: m.port, error: m.error } : null), timeoutMs)
  }

  /** Ask for a drain; resolves with the requests cut once the process has exited. */
  async drain(mode: 'stop' | 'handoff', timeoutMs: number | null = null): Promise<number> {
    this.stopAsked = true
    if (this.state !== 'exited') this.state = 'draining'
    this.send({ type: 'drain', mode, timeout_ms: timeoutMs })
    await this.exited
    return this.cut
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive) this.child.kill(signal)
  }
}
