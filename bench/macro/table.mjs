// The results table: one row per (scenario, tool, target), with the proxy's ratios to the direct stub and to
// nginx measured in the same run (results.mjs). Markdown, so the README shows exactly what the terminal printed.

const fixed = (v, digits) => (v === null || v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits))
const ratio = (v) => (v === null || Number.isNaN(v) ? '' : `${v.toFixed(2)}×`)
const int = (v) => (Number.isNaN(v) ? '–' : Math.round(v).toLocaleString('en-US'))

export const COLUMNS = ['scenario', 'tool', 'target', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'errors', 'others %', 'req/s ÷ direct', 'req/s ÷ nginx', 'CPU ÷ nginx']

export function formatTable(results) {
  const rows = results.runs.map((m) => [
    results.scenarios[m.scenario]?.title ?? m.scenario,
    m.tool,
    m.target,
    int(m.rps),
    fixed(m.p50, 2),
    fixed(m.p99, 2),
    fixed(m.cpu_us_per_req, 1),
    String(m.errors + m.non2xx),
    fixed(m.others_cpu_pct, 0),
    ratio(m.rps_vs_direct),
    ratio(m.rps_vs_nginx),
    ratio(m.cpu_vs_nginx),
  ])
  const width = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i].length)))
  const right = (i) => i >= 3
  const line = (cells) => `| ${cells.map((c, i) => (right(i) ? c.padStart(width[i]) : c.padEnd(width[i]))).join(' | ')} |`
  const rule = `|${width.map((w, i) => (right(i) ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|')}|`
  return [line(COLUMNS), rule, ...rows.map(line)].join('\n')
}

/** One sentence per (scenario, tool) that has both a proxy and an nginx row: the CPU ratio the acceptance asks for. */
export function formatSummary(results) {
  const out = []
  for (const m of results.runs) {
    if (m.cpu_vs_nginx === null) continue
    const title = results.scenarios[m.scenario]?.title ?? m.scenario
    out.push(`${title} (${m.tool}): ${m.target} ${fixed(m.cpu_us_per_req, 1)} µs CPU/request = ${fixed(m.cpu_vs_nginx, 2)}× nginx's; ` +
      `${int(m.rps)} req/s = ${fixed(m.rps_vs_nginx, 2)}× nginx's`)
  }
  return out.join('\n')
}
