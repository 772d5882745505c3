// wrk, when it is on PATH: a multi-connection epoll client in C that outruns autocannon by far, so the proxy, not
// the client, is what saturates. POST bodies need a Lua script, written once per scenario into the run's temp dir.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { run } from './procs.mjs'

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60000, h: 3600000 }

function ms(text) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text)
  return m === null ? NaN : Number(m[1]) * UNIT_MS[m[2]]
}

/** Parses wrk's report (run with --latency). */
export function parseWrk(out) {
  const num = (re) => {
    const m = re.exec(out)
    return m === null ? NaN : Number(m[1])
  }
  const pct = (p) => {
    const m = new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(out)
    return m === null ? NaN : ms(m[1])
  }
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const m = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out)
  const requests = m === null ? NaN : Number(m[1])
  const seconds = m === null ? NaN : ms(m[2] + m[3]) / 1000
  return {
    requests,
    seconds,
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: pct(50),
    p99: pct(99),
    errors: socket === null ? 0 : socket.slice(1).reduce((a, b) => a + Number(b), 0),
    non2xx: Number.isNaN(num(/Non-2xx or 3xx responses: (\d+)/)) ? 0 : num(/Non-2xx or 3xx responses: (\d+)/),
  }
}

/** A Lua long string holding `s` verbatim (a level of '=' that `s` does not contain). */
function luaString(s) {
  let eq = ''
  while (s.includes(`]${eq}]`)) eq += '='
  return `[${eq}[${s}]${eq}]`
}

/** Writes the scenario's wrk script (null when a plain GET needs none). */
export function wrkScript(dir, name, scenario) {
  if (scenario.method === 'GET' && scenario.body === null) return null
  let lua = `wrk.method = ${luaString(scenario.method)}\n`
  for (const [k, v] of Object.entries(scenario.headers)) lua += `wrk.headers[ ${luaString(k)} ] = ${luaString(v)}\n`
  if (scenario.body !== null) lua += `wrk.body = ${luaString(scenario.body)}\n`
  const file = join(dir, `${name}.lua`)
  writeFileSync(file, lua)
  return file
}

/** Runs wrk (pinned like the rest of the load generator); resolves the parsed report. */
export async function wrkRun({ bin, url, scenario, script, connections, threads, seconds, taskset, cpus, progress }) {
  const args = ['-t', String(Math.min(threads, connections)), '-c', String(connections), '-d', `${seconds}s`, '--latency']
  if (script !== null) args.push('-s', script)
  args.push(url + scenario.path)
  let elapsed = 0
  const timer = setInterval(() => progress?.update(`${Math.min(++elapsed, seconds)}/${seconds} s`), 1000)
  const r = await run(bin, args, { taskset, cpus }).finally(() => clearInterval(timer))
  // wrk reports a broken script on stderr and still runs (exit 0) with its default request: not a result
  if (r.code !== 0 || r.stderr.trim() !== '') throw new Error(`wrk exited ${r.code}: ${r.stderr.trim()}`)
  const parsed = parseWrk(r.stdout)
  if (Number.isNaN(parsed.requests)) throw new Error(`cannot read wrk's report:\n${r.stdout}`)
  return parsed
}

export async function wrkVersion(bin) {
  const r = await run(bin, ['--version'])
  const m = /wrk\s+(\S+)/.exec(r.stdout + r.stderr)
  return m === null ? 'unknown' : m[1]
}
