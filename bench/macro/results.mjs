// From measured rows to the numbers the table shows: rounds merged per (scenario, tool, target), then each
// proxy row's ratios to the direct stub and to nginx of the same run.

function median(values) {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  return v.length % 2 === 1 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}

/**
 * One row per (scenario, tool, target): requests, seconds and CPU summed over the rounds (so req/s and CPU µs per
 * request are totals' ratios), latency percentiles as the median of the rounds'.
 */
export function mergeRounds(rounds) {
  const groups = new Map()
  for (const m of rounds) {
    const k = `${m.scenario}\0${m.tool}\0${m.target}`
    const g = groups.get(k)
    if (g === undefined) groups.set(k, [m])
    else g.push(m)
  }
  const out = []
  for (const g of groups.values()) {
    const sum = (f) => g.reduce((a, m) => a + m[f], 0)
    const requests = sum('requests')
    const seconds = sum('seconds')
    const per = (f) => g.reduce((a, m) => a + m[f] * m.requests, 0) / requests
    out.push({
      scenario: g[0].scenario,
      tool: g[0].tool,
      target: g[0].target,
      rounds: g.length,
      requests,
      seconds,
      rps: requests / seconds,
      p50: median(g.map((m) => m.p50)),
      p99: median(g.map((m) => m.p99)),
      errors: sum('errors'),
      non2xx: sum('non2xx'),
      cpu_s: sum('cpu_s'),
      cpu_us_per_req: (sum('cpu_s') * 1e6) / requests,
      stub_cpu_us_per_req: per('stub_cpu_us_per_req'),
      client_cpu_us_per_req: per('client_cpu_us_per_req'),
      others_cpu_pct: sum('others_cpu_pct') / g.length,
    })
  }
  return out
}

/** Adds the ratios to every measurement of a results object (in place) and returns it. */
export function addRatios(results) {
  const find = (m, target) => results.runs.find((r) => r.scenario === m.scenario && r.tool === m.tool && r.target === target)
  for (const m of results.runs) {
    const direct = find(m, 'direct')
    const nginx = find(m, 'nginx')
    m.rps_vs_direct = m.target !== 'direct' && direct ? m.rps / direct.rps : null
    const proxy = m.target.startsWith('proxy')
    m.rps_vs_nginx = proxy && nginx ? m.rps / nginx.rps : null
    m.cpu_vs_nginx = proxy && nginx ? m.cpu_us_per_req / nginx.cpu_us_per_req : null
  }
  return results
}

