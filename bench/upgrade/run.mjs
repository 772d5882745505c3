#!/usr/bin/env node
// Zero-downtime upgrades, measured: the proxy under a continuous client load (kept-alive and fresh connections,
// long SSE streams), UPGRADES upgrades in a row, with net.ipv4.tcp_migrate_req at 0 and at 1. Prints, per setting:
// requests, failed responses, connection errors (by code), cut streams, and how long each upgrade took (from the
// command to the new generation serving). Writes the figures as upgrade.json (upgrade-busy.json with BURN) to
// <tmpdir>/leaky-bench/, or to bench/results/ with RECORD=1 (bench/record.mjs).
// Toggling the sysctl needs root; without it only the current setting is measured. The original value is restored.
// Knobs (env): UPGRADES (default 5), WORKERS (2), KEEPALIVE (4), FRESH (4), SSE (2), SETTINGS ("0,1"), RECORD,
// RESULTS, BURN (0):
// BURN=n runs n busy-loop processes meanwhile, a machine whose CPUs are taken, where connections wait in accept
// queues long enough for the setting to matter.
// Build first: npx tsc -p tsconfig.build.json
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Load } from './load.mjs'
import { writeResults } from '../record.mjs'
import { controlRequest } from '../../dist/supervisor/control.js'
import { controlSocketPath } from '../../dist/supervisor/pid-file.js'

const env = process.env
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))
const SYSCTL = '/proc/sys/net/ipv4/tcp_migrate_req'
const UPGRADES = Number(env.UPGRADES ?? 5)
const WORKERS = Number(env.WORKERS ?? 2)

function readSysctl() {
  try {
    return readFileSync(SYSCTL, 'utf8').trim()
  } catch {
    return null
  }
}

function setSysctl(v) {
  try {
    writeFileSync(SYSCTL, v)
    return readSysctl() === v
  } catch {
    return false
  }
}

function config(dir) {
  return `# written by bench/upgrade/run.mjs
listen: 127.0.0.1:0
workers: ${WORKERS}
drain_timeout: 30s
pid_file: ${join(dir, 'leaky.pid')}
admin: { listen: 127.0.0.1:0 }
log: { level: info, access: false }
upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub }
`
}

async function startMaster(dir) {
  const file = join(dir, 'leaky.yaml')
  writeFileSync(file, config(dir))
  const child = spawn(process.execPath, [CLI, 'start', '-c', file], { stdio: ['ignore', 'pipe', 'inherit'] })
  let buf = ''
  const ready = await new Promise((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`proxy exited with ${code} before ready`)))
    child.stdout.setEncoding('utf8').on('data', (d) => {
      buf += d
      for (const line of buf.split('\n')) {
        if (!line.includes('"msg":"ready"')) continue
        resolve(JSON.parse(line))
      }
    })
  })
  child.stdout.resume()
  return { child, port: ready.port, socket: controlSocketPath(join(dir, 'leaky.pid'), child.pid) }
}

async function measure(setting) {
  const dir = mkdtempSync(join(tmpdir(), 'leaky-bench-upgrade-'))
  const m = await startMaster(dir)
  const burners = Array.from({ length: Number(env.BURN ?? 0) }, () => spawn(process.execPath, ['-e', 'for (;;);'], { stdio: 'ignore' }))
  const load = new Load({
    origin: `http://127.0.0.1:${m.port}`,
    keepalive: Number(env.KEEPALIVE ?? 4),
    fresh: Number(env.FRESH ?? 4),
    sse: Number(env.SSE ?? 2),
    limited: 0,
  })
  load.start()
  await new Promise((r) => setTimeout(r, 1000))
  const took = []
  for (let i = 0; i < UPGRADES; i++) {
    const t0 = performance.now()
    const r = await controlRequest(m.socket, { cmd: 'upgrade' }, 120_000)
    took.push(Math.round(performance.now() - t0))
    if (!r.ok) process.stderr.write(`upgrade ${i + 1} failed: ${r.reason}\n`)
    await new Promise((res) => setTimeout(res, 500))
  }
  const stats = await load.stop()
  for (const b of burners) b.kill('SIGKILL')
  m.child.kill('SIGTERM')
  await new Promise((r) => m.child.on('exit', r))
  const byCode = {}
  for (const e of stats.errors) byCode[e.code] = (byCode[e.code] ?? 0) + 1
  return {
    tcp_migrate_req: setting,
    busy_loops: burners.length,
    upgrades: UPGRADES,
    requests: stats.requests,
    ok: stats.ok,
    failed: stats.failed.length,
    connection_errors: stats.errors.length,
    errors_by_code: byCode,
    streams: stats.streams,
    streams_cut: stats.cut.length,
    upgrade_ms: took,
    upgrade_ms_median: took.slice().sort((a, b) => a - b)[Math.floor(took.length / 2)],
  }
}

const original = readSysctl()
const wanted = (env.SETTINGS ?? '0,1').split(',').map((s) => s.trim())
const rows = []
try {
  for (const s of wanted) {
    if (original === null) {
      process.stderr.write(`bench: ${SYSCTL} does not exist (kernel < 5.14?): measuring as is\n`)
      rows.push(await measure('absent'))
      break
    }
    if (readSysctl() !== s && !setSysctl(s)) {
      process.stderr.write(`bench: cannot set tcp_migrate_req=${s} (not root?): skipped\n`)
      continue
    }
    process.stderr.write(`bench: tcp_migrate_req=${s}, ${UPGRADES} upgrades under load…\n`)
    rows.push(await measure(s))
  }
} finally {
  if (original !== null && readSysctl() !== original) setSysctl(original)
}

const head = ['tcp_migrate_req', 'requests', 'failed', 'conn errors', 'streams', 'cut', 'upgrade ms (median)', 'errors by code']
const table = [head, ...rows.map((r) => [r.tcp_migrate_req, r.requests, r.failed, r.connection_errors, r.streams, r.streams_cut, `${r.upgrade_ms_median} (${r.upgrade_ms.join(', ')})`, JSON.stringify(r.errors_by_code)].map(String))]
const w = head.map((_, i) => Math.max(...table.map((r) => r[i].length)))
for (const r of table) process.stdout.write(`${r.map((c, i) => c.padEnd(w[i])).join('  ')}\n`)
const name = Number(env.BURN ?? 0) > 0 ? 'upgrade-busy.json' : 'upgrade.json'
writeResults(name, { when: new Date().toISOString(), workers: WORKERS, rows })
