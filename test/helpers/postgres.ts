// A real PostgreSQL server for tests: initdb into this test file's scratch dir, then postgres on a free 127.0.0.1
// port (fsync off: a test database), ready once its log says so, stopped by its PID. stop() then start() again
// brings the same cluster back on the same port, which is how tests play "Postgres was down and came back".
// Debian keeps the binaries off PATH in /usr/lib/postgresql/<major>/bin, the newest taken ($POSTGRES_BIN overrides); postgres refuses to run
// as root, so under root it runs as the `postgres` user the Debian package creates.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { accessSync, chmodSync, chownSync, constants, mkdirSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { reapOnExit, scratchDir, SCRATCH, SCRATCH_TMP } from './scratch.js'
import { freePort } from './proxy.js'

export const POSTGRES_BIN = process.env.POSTGRES_BIN ?? newestPostgres()

/** /usr/lib/postgresql/<major>/bin of the newest major installed (15 on Debian 12, 17 on Debian 13). */
function newestPostgres(): string {
  let majors: number[] = []
  try {
    majors = readdirSync('/usr/lib/postgresql').map(Number).filter((n) => Number.isInteger(n)).sort((a, b) => b - a)
  } catch {}
  return `/usr/lib/postgresql/${majors[0] ?? 15}/bin`
}

function runAs(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
  return { uid, gid }
}

export class PostgresProcess {
  port = 0
  readonly dir: string
  readonly #user: { uid: number; gid: number } | null
  #proc: ChildProcess | null = null

  constructor() {
    try {
      accessSync(path.join(POSTGRES_BIN, 'postgres'), constants.X_OK)
    } catch {
      throw new Error(`no postgres in ${POSTGRES_BIN} (set POSTGRES_BIN, or run: bash test/setup.sh — it installs the Debian package postgresql)`)
    }
    this.#user = runAs()
    this.dir = scratchDir('pg-')
    if (this.#user !== null) {
      // the postgres user must reach its directory inside the root-owned scratch dir: traverse only, no listing
      chmodSync(SCRATCH, 0o711)
      chmodSync(SCRATCH_TMP, 0o711)
      chownSync(this.dir, this.#user.uid, this.#user.gid)
    }
    const init = spawnSync(path.join(POSTGRES_BIN, 'initdb'), ['-D', this.data, '-U', 'leaky', '--auth=trust', '-E', 'UTF8', '--no-sync'], {
      encoding: 'utf8', ...(this.#user ?? {}),
    })
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`)
    mkdirSync(this.sockets, { recursive: true })
    if (this.#user !== null) chownSync(this.sockets, this.#user.uid, this.#user.gid)
  }

  get data(): string {
    return path.join(this.dir, 'data')
  }

  get sockets(): string {
    return path.join(this.dir, 'run')
  }

  get url(): string {
    return `postgres://leaky@127.0.0.1:${this.port}/postgres`
  }

  async start(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const port = this.port !== 0 ? this.port : await freePort()
      const proc = reapOnExit(spawn(path.join(POSTGRES_BIN, 'postgres'), [
        '-D', this.data, '-p', String(port), '-k', this.sockets, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off',
      ], { stdio: ['ignore', 'pipe', 'pipe'], ...(this.#user ?? {}) }))
      let out = ''
      const ready = new Promise<boolean>((resolve) => {
        const on = (d: Buffer) => {
          out += d.toString()
          if (out.includes('database system is ready to accept connections')) resolve(true)
        }
        proc.stdout!.on('data', on)
        proc.stderr!.on('data', on)
        proc.once('exit', () => resolve(false))
      })
      if (await ready) {
        this.#proc = proc
        this.port = port
        return
      }
      if (attempt >= 3) throw new Error(`postgres did not start: ${out.slice(-800)}`)
    }
  }

  /** Stop it (SIGINT: fast shutdown — connections cut at once, the cluster restartable on the same port). */
  async stop(signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
    const p = this.#proc
    this.#proc = null
    if (p === null || p.exitCode !== null || p.signalCode !== null) return
    const exited = new Promise((resolve) => p.once('exit', resolve))
    p.kill(signal)
    await exited
  }
}

export async function startPostgres(): Promise<PostgresProcess> {
  const pg = new PostgresProcess()
  await pg.start()
  return pg
}
