// diffConfig: which top-level sections a reload changes, and which changes need an upgrade instead.
import t from 'tap'
import { parseConfig, diffConfig, formatIssue, type Config } from '../../src/config/index.js'

const BASE = `
listen: 0.0.0.0:8080
workers: 2
limits_table: { capacity: 64k, when_full: deny_new }
admin: { listen: 127.0.0.1:9090 }
limits:
  a: { per: ip, requests: 10/s }
  b: { per: ip, tokens: 1k/min }
upstreams:
  u: { targets: [embedded] }
routes:
  - { path: /a/, upstream: u, limits: [a] }
  - { path: /b/, upstream: u, limits: [b] }
`

function cfg(yaml: string): Config {
  const r = parseConfig(yaml, 'd.yaml', {})
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'))
  return r.config
}

const base = cfg(BASE)

const cases: [string, string, { inPlace: string[]; needsUpgrade: string[] }][] = [
  ['nothing', BASE, { inPlace: [], needsUpgrade: [] }],
  ['same values, other spelling', BASE.replace('10/s', '10/sec').replace('64k', '64000'), { inPlace: [], needsUpgrade: [] }],
  ['a limit rate', BASE.replace('10/s', '20/s'), { inPlace: ['limits'], needsUpgrade: [] }],
  ['limits reordered in their map', BASE.replace('  a: { per: ip, requests: 10/s }\n  b: { per: ip, tokens: 1k/min }', '  b: { per: ip, tokens: 1k/min }\n  a: { per: ip, requests: 10/s }'), { inPlace: [], needsUpgrade: [] }],
  ['routes reordered (order matters)', BASE.replace('  - { path: /a/, upstream: u, limits: [a] }\n  - { path: /b/, upstream: u, limits: [b] }', '  - { path: /b/, upstream: u, limits: [b] }\n  - { path: /a/, upstream: u, limits: [a] }'), { inPlace: ['routes'], needsUpgrade: [] }],
  ['listen', BASE.replace('0.0.0.0:8080', '0.0.0.0:8081'), { inPlace: [], needsUpgrade: ['listen'] }],
  ['workers', BASE.replace('workers: 2', 'workers: auto'), { inPlace: [], needsUpgrade: ['workers'] }],
  ['table capacity', BASE.replace('64k', '128k'), { inPlace: [], needsUpgrade: ['limits_table.capacity'] }],
  ['table policy', BASE.replace('deny_new', 'evict_idle'), { inPlace: ['limits_table'], needsUpgrade: [] }],
  ['admin listen', BASE.replace('127.0.0.1:9090', '127.0.0.1:9091'), { inPlace: [], needsUpgrade: ['admin.listen'] }],
  ['admin token', BASE.replace('{ listen: 127.0.0.1:9090 }', '{ listen: 127.0.0.1:9090, token: t }'), { inPlace: ['admin'], needsUpgrade: [] }],
  ['admin listen and token', BASE.replace('{ listen: 127.0.0.1:9090 }', '{ listen: 127.0.0.1:9091, token: t }'), { inPlace: ['admin'], needsUpgrade: ['admin.listen'] }],
  ['max_header (uWS reads its head limit once per process)', `${BASE}server: { max_header: 32kb }\n`, { inPlace: [], needsUpgrade: ['server.max_header'] }],
  ['max_body', `${BASE}server: { max_body: 1mb }\n`, { inPlace: ['server'], needsUpgrade: [] }],
  ['redis added', `${BASE}redis: { url: "redis://127.0.0.1:6379" }\n`, { inPlace: ['redis'], needsUpgrade: [] }],
  ['several', `${BASE.replace('workers: 2', 'workers: 3').replace('10/s', '5/s')}log: { level: debug }\ndrain_timeout: 5s\n`, {
    inPlace: ['drain_timeout', 'log', 'limits'], needsUpgrade: ['workers'],
  }],
]

for (const [name, yaml, want] of cases) {
  t.test(name, async (t) => {
    const d = diffConfig(base, cfg(yaml))
    t.strictSame({ inPlace: [...d.inPlace].sort(), needsUpgrade: [...d.needsUpgrade].sort() }, { inPlace: [...want.inPlace].sort(), needsUpgrade: [...want.needsUpgrade].sort() })
  })
}

t.test('symmetric: removing what was added reports the same sections', async (t) => {
  const withRedis = cfg(`${BASE}redis: { url: "redis://127.0.0.1:6379" }\n`)
  t.strictSame(diffConfig(withRedis, base), { inPlace: ['redis'], needsUpgrade: [] })
})
