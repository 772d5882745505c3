// The stub upstream and the proxy, both from the compiled CLI in dist/ (`npm run build` first).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { start, waitForJson } from './procs.mjs'

// LEAKY_CLI: another build to measure (e.g. a git worktree's dist/cli/main.js, to compare before and after a change)
export const CLI = process.env.LEAKY_CLI ?? fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))

export function cliBuilt() {
  return existsSync(CLI)
}

/** `leaky stub` on a free port; resolves { proc, port }. */
export async function startStub({ taskset, cpus }) {
  const proc = start(process.execPath, [CLI, 'stub', '--port', '0', '--host', '127.0.0.1'], { taskset, cpus })
  const line = await waitForJson(proc, (v) => v.msg === 'stub listening')
  return { proc, port: line.port }
}

/**
 * The proxy's config: /__stub/ → a provider: none upstream (bodies streamed, never parsed: plain proxying),
 * /v1/ → an OpenAI upstream with a request and a token limit far above what the bench can reach, so the LLM
 * scenarios pay for the estimate, the limiter and usage accounting as production traffic does.
 * Log level info only for the ready line; access lines are off so no per-request log is written.
 */
export function proxyConfig({ upstreamPort, workers, poolConnections }) {
  const target = `["http://127.0.0.1:${upstreamPort}"]`
  return `# written by bench/macro/leaky.mjs
listen: 127.0.0.1:0
workers: ${workers}
log: { level: info, access: false }
admin: { listen: 127.0.0.1:0 }
limits:
  bench-rps: { per: ip, requests: 1M/s }
  bench-tpm: { per: ip, tokens: 10000M/min }
upstreams:
  stub-openai: { provider: openai, targets: ${target}, pool: { connections: ${poolConnections} } }
  stub-plain: { provider: none, targets: ${target}, pool: { connections: ${poolConnections} } }
routes:
  - { path: /v1/, upstream: stub-openai, limits: [bench-rps, bench-tpm] }
  - { path: /__stub/, upstream: stub-plain }
`
}

/** `leaky start` (of `cli`, default this checkout's build) with the bench config; resolves { proc, port, adminPort }. */
export async function startProxy({ cli = CLI, dir, upstreamPort, workers, poolConnections, taskset, cpus, nodeArgs = [] }) {
  mkdirSync(dir, { recursive: true })
  const file = join(dir, 'leaky.yaml')
  writeFileSync(file, proxyConfig({ upstreamPort, workers, poolConnections }))
  const proc = start(process.execPath, [...nodeArgs, cli, 'start', '-c', file], { taskset, cpus, cwd: dir })
  const line = await waitForJson(proc, (v) => v.msg === 'ready')
  return { proc, port: line.port, adminPort: line.admin_port }
}
