// One listening address of a worker, served by uWS: plain (App) or TLS (SSLApp). uWS fixes an SSLApp's TLS context
// when it builds the app (key, cert, passphrase, CA file; uWebSockets.js 20.30 has no call to replace them), so new
// certificates mean a new app: it starts listening on the same port first (uSockets binds with SO_REUSEPORT), then
// the old app's listen socket closes. The old app keeps serving the connections it already has — their TLS
// sessions were made with the old certificate — until the worker drains. SNI (addServerName) cannot do this: a
// client that connects to an IP address sends no server name and always gets the app's own context.
import type { AppOptions, HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js'
import type { UwsModule } from './uws.js'
import type { Config } from '../config/index.js'
import { filesDigest } from '../tls/pem.js'

export type ListenerTls = Config['tls']
export type RequestHandler = (res: HttpResponse, req: HttpRequest) => void

function digestOf(tls: ListenerTls): string {
  if (tls === undefined) return 'plain'
  return filesDigest([tls.cert, tls.key, tls.client_ca], `tls\0${tls.passphrase ?? ''}`)
}

function optionsOf(tls: NonNullable<ListenerTls>): AppOptions {
  const o: AppOptions = { cert_file_name: tls.cert, key_file_name: tls.key }
  if (tls.passphrase !== undefined) o.passphrase = tls.passphrase
  // with a CA file uSockets sets SSL_VERIFY_PEER: a client certificate that does not verify fails the handshake
  if (tls.client_ca !== undefined) o.ca_file_name = tls.client_ca
  return o
}

export class Listener {
  readonly #uws: UwsModule
  readonly #host: string
  readonly #handler: RequestHandler
  #app: TemplatedApp
  #digest: string
  #port = 0
  #token: us_listen_socket | null = null
  /** apps whose listen socket was closed by a certificate change; they still serve their open connections */
  readonly #retired: TemplatedApp[] = []

  constructor(uws: UwsModule, host: string, tls: ListenerTls, handler: RequestHandler) {
    this.#uws = uws
    this.#host = host
    this.#handler = handler
    this.#digest = digestOf(tls)
    try {
      this.#app = this.#build(tls)
    } catch (err) {
      // uWS says only "App construction failed": name the files (they were checked at load, but may have changed)
      throw new Error(`TLS context from ${tls?.cert} and ${tls?.key} could not be built (${(err as Error).message})`, { cause: err })
    }
  }

  get tls(): boolean {
    return this.#digest !== 'plain'
  }

  #build(tls: ListenerTls): TemplatedApp {
    const app = tls === undefined ? this.#uws.App() : this.#uws.SSLApp(optionsOf(tls))
    app.any('/*', this.#handler)
    return app
  }

  /** Bind host:port; the bound port, or 0 when the port could not be taken. */
  listen(port: number): number {
    let bound = 0
    this.#app.listen(this.#host, port, (t) => {
      if (!t) return
      this.#token = t
      bound = this.#uws.us_socket_local_port(t)
    })
    this.#port = bound
    return bound
  }

  /**
   * Apply a reload's TLS settings: nothing when the files (and passphrase) are byte for byte what is loaded, else a
   * new app that takes over the port. Returns an error message and keeps the running app when the new one cannot
   * be built or bound (config validation checked the files, but they may have changed since).
   */
  update(tls: ListenerTls): { swapped: boolean } | { error: string } {
    const digest = digestOf(tls)
    if (digest === this.#digest) return { swapped: false }
    let app: TemplatedApp
    try {
      app = this.#build(tls)
    } catch (err) {
      return { error: `TLS context for ${tls?.cert ?? 'the plain listener'} could not be built (${(err as Error).message}); the running certificate stays` }
    }
    if (this.#token !== null) {
      let token: us_listen_socket | null = null
      app.listen(this.#host, this.#port, (t) => {
        if (t) token = t
      })
      if (token === null) {
        ;(app as unknown as { close(): void }).close()
        return { error: `could not listen on ${this.#host}:${this.#port} with the new TLS context; the running certificate stays` }
      }
      this.#uws.us_listen_socket_close(this.#token)
      this.#token = token
      this.#retired.push(this.#app)
    } else {
      ;(this.#app as unknown as { close(): void }).close()
    }
    this.#app = app
    this.#digest = digest
    return { swapped: true }
  }

  /** Stop accepting new connections; open ones go on being served. */
  stopAccepting(): void {
    if (this.#token === null) return
    this.#uws.us_listen_socket_close(this.#token)
    this.#token = null
  }

  /** Close every connection of every app (uWS must be closed before its thread exits, or the process aborts). */
  close(): void {
    this.stopAccepting()
    for (const app of [...this.#retired, this.#app]) (app as unknown as { close(): void }).close()
    this.#retired.length = 0
  }
}
