// The A/B scaffolding every "what does X cost" bench shares: one rig (wrk, pinning, a temp dir), proxies started
// from a YAML config, and interleaved rounds measuring the proxy's CPU per request. On a machine shared with other
// work an absolute µs figure drifts with the load; the ratio of two cases measured in the same rounds, alternating
// order, does not (or much less), so that ratio is what the scripts report.
//
//   const rig = makeRig('limits', { rounds: 3 })          ROUNDS / DURATION / CONNECTIONS override the defaults
//   await withRig(rig, async () => {
//     const stub = await startStub(rig.load)
//     const proxy = await startLeaky(rig, yaml)
//     const t = await interleave(rig, [{ name, url: proxy.url, pid: proxy.proc.pid, scenario }, ...])
//     console.log(ratioLine(t.a, t.b, 'label'))
//   })
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI } from './leaky.mjs'
import { start, waitForJson, stopAll, which } from './procs.mjs'
import { cpuSeconds } from './cpu.mjs'
import { wrkRun, wrkScript } from './wrk.mjs'
import { allowedCpus } from './machine.mjs'

/**
 * wrk (required: exits with a hint when missing), taskset and the CPU split — the load generator and upstream on the
 * first allowed CPU, the server under test on the second — plus the run's settings and a temp dir.
 */
export function makeRig(name, { rounds = 3, duration = 4, connections = 64, needWrk = true } = {}) {
  const wrk = which('wrk', process.env.WRK)
  if (wrk === null && needWrk) {
    console.error('wrk not found: apt-get install wrk')
    process.exit(1)
  }
  const taskset = which('taskset', process.env.TASKSET)
  const cpus = allowedCpus()
  const split = taskset !== null && cpus !== null && cpus.length >= 2
  return {
    rounds: Number(process.env.ROUNDS ?? rounds),
    duration: Number(process.env.DURATION ?? duration),
    connections: Number(process.env.CONNECTIONS ?? connections),
    wrk,
    taskset,
    /** pinning of the load generator and the upstream: `{ taskset, cpus }`, as procs.start and startStub take it */
    load: { taskset, cpus: split ? String(cpus[0]) : null },
    /** pinning of the server under test */
    server: { taskset, cpus: split ? String(cpus[1]) : null },
    dir: mkdtempSync(join(tmpdir(), `leaky-${name}-bench-`)),
  }
}

/** Runs `fn`, then stops every process the bench started and removes the temp dir, also on failure. */
export async function withRig(rig, fn) {
  try {
    return await fn()
  } finally {
    await stopAll()
    rmSync(rig.dir, { recursive: true, force: true })
  }
}

/** `leaky start` with `yaml` (written to the rig's dir as `file`), pinned to the server CPU; resolves { proc, port, url }. */
export async function startLeaky(rig, yaml, { cli = CLI, file = 'leaky.yaml', env } = {}) {
  const path = join(rig.dir, file)
  writeFileSync(path, yaml)
  const proc = start(process.execPath, [cli, 'start', '-c', path], { ...rig.server, cwd: rig.dir, env })
  const ready = await waitForJson(proc, (v) => v.msg === 'ready')
  return { proc, port: ready.port, adminPort: ready.admin_port, url: `http://127.0.0.1:${ready.port}` }
}

/** One wrk window against a case; CPU seconds of `pid` (all threads and live descendants) across it. */
export async function measure(rig, c, seconds, connections = rig.connections) {
  const script = c.script !== undefined ? c.script : wrkScript(rig.dir, c.name.replace(/[^\w-]/g, '_'), c.scenario)
  const c0 = cpuSeconds(c.pid)
  const res = await wrkRun({ bin: rig.wrk, url: c.url, scenario: c.scenario, script, connections, threads: 1, seconds, ...rig.load })
  const cpu = cpuSeconds(c.pid) - c0
  if (res.non2xx > 0 || res.errors > 0) throw new Error(`${c.name}: ${res.non2xx} non-2xx, ${res.errors} socket errors`)
  return { ...res, cpu, cpuUsPerReq: (cpu / res.requests) * 1e6 }
}

/**
 * Interleaved rounds over `cases` ({ name, url, pid, scenario, script? }): each case warmed up for 1 s, then per
 * round every case once for rig.duration seconds, the order reversed every other round (so neither side always runs
 * first after the other). Resolves { [name]: { cpu, req, us, rounds: [µs/req per round] } }, us = total CPU ÷ total
 * requests.
 */
export async function interleave(rig, cases, { log = true } = {}) {
  const totals = Object.fromEntries(cases.map((c) => [c.name, { cpu: 0, req: 0, us: 0, rps: [], rounds: [] }]))
  for (const c of cases) await measure(rig, c, 1)
  const width = Math.max(...cases.map((c) => c.name.length))
  for (let r = 1; r <= rig.rounds; r++) {
    for (const c of r % 2 === 1 ? cases : [...cases].reverse()) {
      const res = await measure(rig, c, rig.duration)
      const t = totals[c.name]
      t.cpu += res.cpu
      t.req += res.requests
      t.rounds.push(+res.cpuUsPerReq.toFixed(2))
      t.rps.push(Math.round(res.rps))
      if (log) console.log(`round ${r} ${c.name.padEnd(width)} ${res.rps.toFixed(0).padStart(6)} req/s  ${res.cpuUsPerReq.toFixed(1)} µs CPU/req`)
    }
  }
  for (const t of Object.values(totals)) t.us = (t.cpu / t.req) * 1e6
  return totals
}

/** Per-round ratios a ÷ b and their median: on a loaded machine one round can be far off, the median much less. */
export function roundRatios(a, b) {
  const r = a.rounds.map((x, i) => x / b.rounds[i])
  const s = [...r].sort((x, y) => x - y)
  const median = s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
  return { perRound: r.map((x) => +x.toFixed(3)), median: +median.toFixed(3) }
}

/** `label: a µs vs b µs = r×`, plus the per-round ratios and their median (their spread is this run's noise). */
export function ratioLine(a, b, label, goal = '') {
  const r = roundRatios(a, b)
  return `${label}: ${a.us.toFixed(1)} µs vs ${b.us.toFixed(1)} µs = ${(a.us / b.us).toFixed(3)}×${goal === '' ? '' : ` (goal ${goal})`}` +
    `  per round: ${r.perRound.map((x) => x.toFixed(2)).join(' ')}, median ${r.median.toFixed(3)}×`
}

// The saturated rig's upstream: one uWS thread, every answer prebuilt, cheap enough that the proxy's core is the
// bottleneck; SSE events corked one by one so each leaves in its own write.
const UPSTREAM = (uwsPackage, events) => `
import { createRequire } from 'node:module'
const require = createRequire(${JSON.stringify(new URL('../../package.json', import.meta.url).pathname)})
const uws = require(${JSON.stringify(uwsPackage)})
const health = '{"status":"ok"}'
const chat = JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion', created: 1700000000, model: 'gpt-4o-mini-2024-07-18',
  choices: [{ index: 0, message: { role: 'assistant', content: 'A leaky bucket drains at a steady rate.', refusal: null }, logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 230, completion_tokens: 9, total_tokens: 239 }, system_fingerprint: 'fp_bench' })
const events = []
for (let i = 0; i < ${events}; i++) events.push('data: ' + JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-4o-mini', choices: [{ index: 0, delta: { content: ' tok' }, finish_reason: null }] }) + '\\n\\n')
const tail = 'data: ' + JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 20, completion_tokens: ${events}, total_tokens: ${events + 20} } }) + '\\n\\ndata: [DONE]\\n\\n'
const app = uws.App()
app.get('/*', (res) => { res.cork(() => res.writeHeader('content-type', 'application/json').end(health)) })
app.post('/*', (res, req) => {
  let body = ''
  res.onAborted(() => { res.gone = true })
  res.onData((ab, last) => {
    body += Buffer.from(ab).toString()
    if (!last || res.gone) return
    if (!body.includes('"stream":true')) return res.cork(() => res.writeHeader('content-type', 'application/json').end(chat))
    res.cork(() => res.writeStatus('200 OK').writeHeader('content-type', 'text/event-stream'))
    for (const e of events) res.cork(() => res.write(e))
    res.cork(() => res.end(tail))
  })
})
app.listen('127.0.0.1', 0, (s) => console.log(JSON.stringify({ msg: 'listening', port: uws.us_socket_local_port(s) })))
`

/** The saturated rig's uWS upstream on the load CPU; resolves { proc, port }. */
export async function startUwsUpstream(rig, { events = 200, uwsPackage = process.env.LEAKY_UWS ?? 'uWebSockets.js' } = {}) {
  const file = join(rig.dir, 'upstream.mjs')
  writeFileSync(file, UPSTREAM(uwsPackage, events))
  const proc = start(process.execPath, [file], rig.load)
  const up = await waitForJson(proc, (v) => v.msg === 'listening')
  return { proc, port: up.port }
}

/** The lines every bench config starts with: any port, one worker thread, the ready line, an admin port. */
export const yamlHead = ({ access = false } = {}) => `listen: 127.0.0.1:0
workers: 1
log: { level: info, access: ${access} }
admin: { listen: 127.0.0.1:0 }
`

/** The key the saturated config knows (team-a, org acme). */
export const CHAT_KEY = 'sk-bench-team-a'

/**
 * Issue 16's proxy config: /v1/ the OpenAI route with key auth, 2 request limits, 1 token limit, metering and the
 * access log; /bare/ the same upstream without auth or limits; /plain/ and /__stub/ a provider: none upstream.
 * `upstreams` / `routes`: more YAML lines for those sections (a variant to compare in the same proxy).
 */
export const saturatedConfig = (port, connections, { upstreams = '', routes = '' } = {}) => `${yamlHead({ access: true })}limits:
  key-rps: { per: key, requests: 1M/s }
  org-rpm: { per: org, requests: 100M/min }
  key-tpm: { per: key, tokens: 10000M/min }
keys:
  - { id: team-a, key: ${CHAT_KEY}, org: acme }
upstreams:
  openai: { provider: openai, targets: ["http://127.0.0.1:${port}"], pool: { connections: ${connections} } }
  plain: { provider: none, targets: ["http://127.0.0.1:${port}"], pool: { connections: ${connections} } }
${upstreams}routes:
  - { path: /v1/, upstream: openai, auth: key, limits: [key-rps, org-rpm, key-tpm] }
  - { path: /bare/, upstream: openai, strip_prefix: true }
  - { path: /plain/, upstream: plain, strip_prefix: true }
  - { path: /__stub/, upstream: plain }
${routes}`
