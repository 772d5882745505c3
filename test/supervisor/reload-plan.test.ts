// planReload: what a reload applies in place and what it leaves for an upgrade or a restart.
import t from 'tap'
import { parseConfig, formatIssue, type Config } from '../../src/config/index.js'
import { planReload } from '../../src/supervisor/reload.js'

const BASE = `
listen: 127.0.0.1:8080
workers: 2
pid_file: /run/leaky/leaky.pid
limits_table: { capacity: 64k, when_full: deny_new }
admin: { listen: 127.0.0.1:9090 }
log: { level: info }
limits:
  a: { per: ip, requests: 10/s }
upstreams:
  u: { targets: [embedded] }
routes:
  - { path: /a/, upstream: u, limits: [a] }
`

function cfg(yaml: string): Config {
  const r = parseConfig(yaml, 'r.yaml', {})
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'))
  return r.config
}

t.test('in-place sections change; listen, workers, capacity, admin listen keep their running values', async (t) => {
  const running = cfg(BASE)
  const next = cfg(
    BASE.replace('127.0.0.1:8080', '127.0.0.1:8081')
      .replace('workers: 2', 'workers: 3')
      .replace('64k', '128k')
      .replace('deny_new', 'evict_idle')
      .replace('127.0.0.1:9090 }', '127.0.0.1:9091, token: secret }')
      .replace('level: info', 'level: warn')
      .replace('10/s', '20/s'),
  )
  const p = planReload(running, next)
  t.same(p.needsUpgrade.sort(), ['admin.listen', 'limits_table.capacity', 'listen', 'workers'])
  t.same(p.applied.sort(), ['admin', 'limits', 'limits_table', 'log'])
  t.same(p.needsRestart, [])
  t.equal(p.config.listen, '127.0.0.1:8080')
  t.equal(p.config.workers, 2)
  t.equal(p.config.limits_table.capacity, 64_000)
  t.equal(p.config.limits_table.when_full, 'evict_idle', 'the table policy applies in place')
  t.equal(p.config.admin.listen, '127.0.0.1:9090')
  t.equal(p.config.admin.token, 'secret', 'the admin token applies in place')
  t.equal(p.config.log.level, 'warn')
  t.equal(p.config.limits.a.amount, 20)
})

t.test('pid_file changes only with a restart of the service', async (t) => {
  const p = planReload(cfg(BASE), cfg(BASE.replace('/run/leaky/leaky.pid', '/tmp/other.pid')))
  t.same(p.needsRestart, ['pid_file'])
  t.same(p.applied, [])
  t.equal(p.config.pid_file, '/run/leaky/leaky.pid')
})

t.test('nothing changed: nothing to do', async (t) => {
  const p = planReload(cfg(BASE), cfg(BASE))
  t.same([p.applied, p.needsUpgrade, p.needsRestart], [[], [], []])
})

t.test('server.max_header needs an upgrade (uWS reads its head limit once per process); max_body applies in place', async (t) => {
  const running = cfg(`${BASE}server: { max_header: 16kb, max_body: 10mb }\n`)
  const p = planReload(running, cfg(`${BASE}server: { max_header: 64kb, max_body: 1mb }\n`))
  t.same(p.needsUpgrade, ['server.max_header'])
  t.same(p.applied, ['server'])
  t.equal(p.config.server.max_header, running.server.max_header, 'the running head limit is kept')
  t.equal(p.config.server.max_body, 1024 * 1024)
})
