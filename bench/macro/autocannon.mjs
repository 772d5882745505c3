// autocannon, programmatic, in this process (which run.mjs pins to the load-generator core). Latency percentiles
// come from our own record of every 2xx response time: autocannon's histogram keeps whole milliseconds, too coarse
// for sub-millisecond loopback latencies.
import autocannon from 'autocannon'
import { createRequire } from 'node:module'

export const version = createRequire(import.meta.url)('autocannon/package.json').version

/** Response times (ms) of one run, in a growable typed array: no per-response allocation in the load generator. */
class LatencyRecord {
  constructor() {
    this.values = new Float64Array(1 << 17)
    this.length = 0
  }

  onResponse(_client, statusCode, _bytes, ms) {
    if (statusCode < 200 || statusCode > 299) return
    if (this.length === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2)
      bigger.set(this.values)
      this.values = bigger
    }
    this.values[this.length++] = ms
  }

  percentile(p) {
    if (this.length === 0) return NaN
    const sorted = this.values.subarray(0, this.length).sort()
    return sorted[Math.min(this.length - 1, Math.ceil((p / 100) * this.length) - 1)]
  }
}

/**
 * Drives `url` with `scenario`'s request over `connections` connections for `seconds`. Pipelining stays 1: uWS
 * closes a connection that sends a request while a response is pending, so -p > 1 cannot measure the proxy.
 * Resolves { requests, seconds, rps, p50, p99, errors, non2xx }.
 */
export function autocannonRun({ url, scenario, connections, seconds, progress }) {
  const record = new LatencyRecord()
  return new Promise((resolve, reject) => {
    let elapsed = 0
    const instance = autocannon({
      url: url + scenario.path,
      method: scenario.method,
      headers: scenario.headers,
      body: scenario.body ?? undefined,
      connections,
      pipelining: 1,
      duration: seconds,
    }, (err, r) => {
      if (err) {
        reject(err)
        return
      }
      const requests = r.requests.total
      resolve({
        requests,
        seconds: r.duration,
        rps: requests / r.duration,
        p50: record.percentile(50),
        p99: record.percentile(99),
        errors: r.errors + r.timeouts,
        non2xx: r.non2xx,
      })
    })
    instance.on('response', record.onResponse.bind(record))
    instance.on('tick', (t) => {
      elapsed++
      progress?.update(`${Math.min(elapsed, seconds)}/${seconds} s  ${t.counter} req/s`)
    })
  })
}
