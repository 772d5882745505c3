// `leaky stub`: the stub upstream as a process of its own (the command wiring lives in src/cli/). Prints one JSON
// line when listening, so a script or test can read the port, and stops cleanly on SIGTERM / SIGINT.
import { StubServer, type StubOptions } from './server.js'

export interface RunStubOptions extends StubOptions {
  /** TCP port; 0 = a free one (the printed line says which) */
  port: number
  host: string
  /** listen on this unix socket path instead of host:port */
  unix?: string
  /** stop when aborted, as a signal would (for callers that run the stub in-process) */
  signal?: AbortSignal
  /** where the listening line goes (default process.stdout) */
  out?: NodeJS.WritableStream
}

/** Starts the stub, prints `{"msg":"stub listening","port":N}`, and resolves once it has stopped. */
export async function runStub(opts: RunStubOptions): Promise<void> {
  const server = new StubServer(opts)
  const out = opts.out ?? process.stdout
  if (opts.unix !== undefined) {
    await server.listenUnix(opts.unix)
    out.write(JSON.stringify({ msg: 'stub listening', path: opts.unix }) + '\n')
  } else {
    const port = await server.listen(opts.port, opts.host)
    out.write(JSON.stringify({ msg: 'stub listening', port }) + '\n')
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      opts.signal?.removeEventListener('abort', stop)
      resolve()
    }
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
    if (opts.signal?.aborted) stop()
    else opts.signal?.addEventListener('abort', stop)
  })
  await server.close()
}
