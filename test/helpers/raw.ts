// Raw TCP exchanges for what no HTTP client will send: duplicate Content-Length, smuggling attempts, odd framing.
import net from 'node:net'

export interface RawResult {
  data: string
  /** the server closed the connection (FIN or RST) before our deadline */
  closed: boolean
}

/** Write `bytes`, collect the answer until the server closes or `waitMs` of silence pass. */
export function rawExchange(port: number, bytes: string | Buffer, waitMs = 1500): Promise<RawResult> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    let data = ''
    let timer: NodeJS.Timeout
    const finish = (closed: boolean) => {
      clearTimeout(timer)
      sock.destroy()
      resolve({ data, closed })
    }
    const arm = () => {
      clearTimeout(timer)
      timer = setTimeout(() => finish(false), waitMs)
    }
    sock.on('connect', () => {
      sock.write(bytes)
      arm()
    })
    sock.on('data', (d) => {
      data += d.toString('latin1')
      arm()
    })
    sock.on('end', () => finish(true))
    sock.on('error', () => finish(true))
  })
}
