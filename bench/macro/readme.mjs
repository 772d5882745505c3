#!/usr/bin/env node
// Rewrites the results section of bench/README.md (between its two markers) from a results JSON: the newest recorded
// one (bench/results/, written by `RECORD=1 npm run bench`) unless one is named. The README then shows exactly the
// table `npm run bench` printed.
//   node bench/macro/readme.mjs [bench/results/FILE.json]
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { basename, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { addRatios } from './results.mjs'
import { formatSummary, formatTable } from './table.mjs'

const README = fileURLToPath(new URL('../README.md', import.meta.url))
const RESULTS = fileURLToPath(new URL('../results', import.meta.url))
const START = '<!-- results:start (written by bench/macro/readme.mjs) -->'
const END = '<!-- results:end -->'

// macro results are named by their date; other benches (limiter.json, upgrade.json) share the directory
const file = process.argv[2] ?? join(RESULTS, readdirSync(RESULTS).filter((f) => /^\d{4}-\d\d-\d\dT.*\.json$/.test(f)).sort().at(-1) ?? '')
const r = addRatios(JSON.parse(readFileSync(file, 'utf8')))
// a run that was not recorded is quoted by its full path: the README must not point into bench/results/ for it
const shown = resolve(file).startsWith(RESULTS + sep) ? `bench/results/${basename(file)}` : resolve(file)
const m = r.machine
const s = r.settings

const section = [
  START,
  `Run of ${r.date.slice(0, 16).replace('T', ' ')} UTC, \`${r.command}\` (results: \`${shown}\`).`,
  '',
  `Machine: ${m.nproc} CPUs (nproc), ${m.cpu}, ${m.memory_gb} GB, ${m.kernel}, Node ${m.node}; load average ${m.loadavg_at_start.join(' ')} at start` +
    ` (shared with other work: see "others %"). Commit ${m.commit ?? 'unknown'}` +
    `${s.proxy_built ? `, proxy build (dist/) of ${s.proxy_built.slice(0, 16).replace('T', ' ')} UTC` : ''}.`,
  `Settings: ${s.connections} connections, pipelining ${s.pipelining}, ${s.warmup_s} s warm-up + ${s.duration_s} s per row;` +
    ` proxy \`workers: ${s.proxy_workers}\`, nginx ${s.nginx ?? '(not installed)'} \`worker_processes ${s.nginx_worker_processes}\`;` +
    ` client + stub on CPU ${s.load_cpus ?? 'any'}, proxy / nginx on CPU ${s.server_cpus ?? 'any'};` +
    ` autocannon ${s.tools.autocannon}${s.tools.wrk ? `, wrk ${s.tools.wrk} (${s.wrk_threads} thread)` : ', no wrk'}.`,
  '',
  formatTable(r),
  '',
  ...formatSummary(r).split('\n').filter((l) => l !== '').map((l) => `- ${l}`),
  ...r.notes.map((n) => `- note: ${n}`),
  END,
].join('\n')

const text = readFileSync(README, 'utf8')
const a = text.indexOf(START)
const b = text.indexOf(END)
if (a === -1 || b === -1) {
  process.stderr.write(`readme: markers not found in ${README}\n`)
  process.exit(1)
}
writeFileSync(README, text.slice(0, a) + section + text.slice(b + END.length))
process.stdout.write(`readme: ${README} updated from ${file}\n`)
