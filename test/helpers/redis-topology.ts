// Redis topologies other than one server, for tests: a Redis Cluster of masters and a Sentinel set (master, replica,
// sentinel), every process a real /usr/bin/redis-server on free 127.0.0.1 ports with persistence off, its working
// files in a temporary directory. Readiness is read from each process's own log (an event, not a sleep), except
// cluster_state, which only CLUSTER INFO tells. Everything is stopped by PID (SIGKILL) in stop().
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { REDIS_SERVER, stopProcess } from './redis.js'
import { reapOnExit } from './scratch.js'

export const REDIS_CLI = process.env.REDIS_CLI ?? '/usr/bin/redis-cli'
const HOST = '127.0.0.1'

/** One redis-server process (plain, cluster node or sentinel) and its stdout, which is its log. */
export class RedisNode {
  port = 0
  log = ''
  private proc: ChildProcess | null = null
  private waiters: Waiter[] = []

  /**
   * @param args the command line for a port (and a second free port, for a cluster bus); may write files it names
   * @param ready log text printed once the server listens
   */
  constructor(private readonly args: (port: number, port2: number) => string[], private readonly ready: RegExp) {}

  get pid(): number {
    return this.proc?.pid ?? 0
  }

  /** Spawn on free ports and wait for the ready line; a port taken in between (the process exits) is retried. */
  async start(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const [port, port2] = await freePorts(2)
      const proc = reapOnExit(spawn(REDIS_SERVER, this.args(port, port2), { stdio: ['ignore', 'pipe', 'pipe'] }))
      this.proc = proc
      this.port = port
      this.log = ''
      proc.stdout!.setEncoding('utf8')
      proc.stdout!.on('data', (d: string) => this.onLog(d))
      proc.stderr!.setEncoding('utf8')
      proc.stderr!.on('data', (d: string) => this.onLog(d))
      // 'close' comes after the last output: whoever still waits for a line will not get it
      proc.once('close', () => this.onClose(proc))
      try {
        await this.waitLog(this.ready, 0, 15_000)
        return
      } catch (e) {
        const dead = proc.exitCode !== null || proc.signalCode !== null
        if (!dead) await this.stop()
        this.proc = null
        if (!dead || attempt >= 5) throw e
      }
    }
  }

  /** Resolve with the first match of `re` in the log from offset `from` on (past or future); reject after `ms`. */
  waitLog(re: RegExp, from = 0, ms = 15_000): Promise<RegExpMatchArray> {
    const hit = this.log.slice(from).match(re)
    if (hit !== null) return Promise.resolve(hit)
    if (this.proc === null) return Promise.reject(new Error(`port ${this.port}: not running; log tail: ${this.log.slice(-800)}`))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter)
        reject(new Error(`port ${this.port}: no ${re} in the log within ${ms} ms; log tail: ${this.log.slice(-800)}`))
      }, ms)
      const waiter: Waiter = {
        re, from,
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      }
      this.waiters.push(waiter)
    })
  }

  /** Kill it (SIGKILL by default: a crash) and wait for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc
    this.proc = null
    await stopProcess(p, signal)
  }

  private onLog(d: string): void {
    this.log += d
    if (this.waiters.length === 0) return
    this.waiters = this.waiters.filter((w) => {
      const m = this.log.slice(w.from).match(w.re)
      if (m === null) return true
      w.resolve(m)
      return false
    })
  }

  private onClose(proc: ChildProcess): void {
    const ws = this.waiters
    this.waiters = []
    const e = new Error(`port ${this.port}: redis-server exited (${proc.exitCode ?? proc.signalCode}); log tail: ${this.log.slice(-800)}`)
    for (const w of ws) w.reject(e)
  }
}

interface Waiter {
  re: RegExp
  from: number
  resolve: (m: RegExpMatchArray) => void
  reject: (e: Error) => void
}

/** A Redis Cluster of masters only (no replicas), slots spread evenly by `redis-cli --cluster create`. */
export class RedisClusterSet {
  readonly nodes: RedisNode[] = []
  readonly dir = mkdtempSync(path.join(tmpdir(), 'leaky-cluster-'))

  /** "127.0.0.1:port" of every node, in slot order (node 0 holds the lowest slots). */
  get addresses(): string[] {
    return this.nodes.map((n) => `${HOST}:${n.port}`)
  }

  async start(masters: number): Promise<void> {
    for (let i = 0; i < masters; i++) {
      // the bus port is chosen too: the default (port + 10000) is past 65535 for half of the ephemeral range
      const n = new RedisNode((port, bus) => ['--port', String(port), '--cluster-port', String(bus), '--cluster-enabled', 'yes',
        '--cluster-config-file', path.join(this.dir, `nodes-${port}.conf`), '--dir', this.dir,
        '--save', '', '--appendonly', 'no', '--bind', HOST], /Ready to accept connections/)
      this.nodes.push(n)
    }
    await Promise.all(this.nodes.map((n) => n.start()))
    await promisify(execFile)(REDIS_CLI, ['--cluster', 'create', ...this.addresses, '--cluster-replicas', '0', '--cluster-yes'],
      { timeout: 15_000 })
    // create returns once the nodes agree on the slots; each still has to see the others before it says ok
    const clients = this.nodes.map((n) => new Redis({ host: HOST, port: n.port, maxRetriesPerRequest: 1 }))
    try {
      await Promise.all(clients.map((c) => until(async () => /cluster_state:ok/.test(String(await c.call('CLUSTER', 'INFO'))), 15_000,
        'cluster_state:ok')))
    } finally {
      for (const c of clients) c.disconnect()
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()))
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** A started cluster of `masters` nodes; the test must call stop() (t.teardown). */
export async function startCluster(masters = 3): Promise<RedisClusterSet> {
  const c = new RedisClusterSet()
  try {
    await c.start(masters)
  } catch (e) {
    await c.stop()
    throw e
  }
  return c
}

/**
 * One master, one replica of it and one sentinel watching it (quorum 1), with short failure detection
 * (down-after 1 s, failover-timeout 3 s): a killed master is replaced by the replica in ~2 s on an idle machine.
 */
export class SentinelSet {
  readonly name = 'mymaster'
  readonly dir = mkdtempSync(path.join(tmpdir(), 'leaky-sentinel-'))
  readonly master = new RedisNode((port) => plainArgs(port, this.dir), /Ready to accept connections/)
  readonly replica = new RedisNode((port) => [...plainArgs(port, this.dir), '--replicaof', HOST, String(this.master.port)],
    /Ready to accept connections/)
  readonly sentinel = new RedisNode((port) => {
    // sentinel rewrites its config file (state, epochs): one per attempt, in the temporary directory
    const file = path.join(this.dir, `sentinel-${port}.conf`)
    writeFileSync(file, `port ${port}
bind ${HOST}
dir ${this.dir}
sentinel monitor ${this.name} ${HOST} ${this.master.port} 1
sentinel down-after-milliseconds ${this.name} 1000
sentinel failover-timeout ${this.name} 3000
`)
    return [file, '--sentinel']
  }, /\+monitor master/)

  async start(): Promise<void> {
    await this.master.start()
    await this.replica.start()
    await this.replica.waitLog(/MASTER <-> REPLICA sync: Finished with success/)
    await this.sentinel.start()
    // the sentinel learns of the replica from the master's INFO; without it there is nothing to fail over to
    await this.sentinel.waitLog(new RegExp(`\\+slave slave ${HOST}:${this.replica.port} `))
  }

  /**
   * Kill the master (SIGKILL by PID) and wait until the sentinel has promoted the replica (+switch-master).
   * Returns the new master's port.
   */
  async failover(ms = 20_000): Promise<number> {
    const from = this.sentinel.log.length
    const old = this.master.port
    await this.master.stop('SIGKILL')
    const m = await this.sentinel.waitLog(new RegExp(`\\+switch-master ${this.name} ${HOST} ${old} ${HOST} (\\d+)`), from, ms)
    return Number(m[1])
  }

  async stop(): Promise<void> {
    await Promise.all([this.sentinel.stop(), this.replica.stop(), this.master.stop()])
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** A started sentinel set; the test must call stop() (t.teardown). */
export async function startSentinel(): Promise<SentinelSet> {
  const s = new SentinelSet()
  try {
    await s.start()
  } catch (e) {
    await s.stop()
    throw e
  }
  return s
}

function plainArgs(port: number, dir: string): string[] {
  return ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir]
}

/** Poll `check` every 50 ms until it holds; throw after `ms` (for state only visible by asking). */
export async function until(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      if (await check()) return
    } catch {
      // not answering yet: ask again
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** `n` distinct ports free now (all listeners held open together, so none repeats). */
async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => net.createServer().listen(0, HOST))
  await Promise.all(servers.map((s) => once(s, 'listening')))
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}
