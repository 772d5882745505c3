// The systemd files: `systemd-analyze verify` accepts the unit (skipped, with the reason, where systemd-analyze is
// absent), and the unit says what the operations promise: readiness by notification, reload by SIGHUP, restart on
// failure, a dedicated user, state and runtime directories, hardening, a stop timeout above the default drain.
// The sysctl snippet sets tcp_migrate_req; the sysusers line creates the user.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { parseConfig } from '../../src/config/index.js'
import { ROOT } from '../helpers/proxy.js'

const UNIT = path.join(ROOT, 'systemd/leaky.service')
const unit = readFileSync(UNIT, 'utf8')

/** section → key → values (a key may repeat) */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>()
  let section = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const s = /^\[(.+)\]$/.exec(line)
    if (s !== null) {
      section = s[1]
      out.set(section, new Map())
      continue
    }
    const i = line.indexOf('=')
    const k = line.slice(0, i)
    const list = out.get(section)!.get(k) ?? []
    list.push(line.slice(i + 1))
    out.get(section)!.set(k, list)
  }
  return out
}

const hasAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0
t.test('systemd-analyze verify', { skip: hasAnalyze ? false : 'systemd-analyze is not installed here' }, async (t) => {
  // verify checks that ExecStart's program exists: /usr/bin/node, where Debian's and NodeSource's Node live
  const node = spawnSync('sh', ['-c', 'test -x /usr/bin/node'])
  if (node.status !== 0) return t.skip('/usr/bin/node is absent here, so ExecStart= cannot verify')
  const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stderr.trim(), '', 'no warnings')
})

t.test('the unit: notify readiness, reload, restart, user, directories, hardening', async (t) => {
  const s = parseUnit(unit).get('Service')!
  const one = (k: string) => s.get(k)?.at(-1)
  t.equal(one('Type'), 'notify')
  t.equal(one('NotifyAccess'), 'all', 'systemd-notify runs as a child of the master')
  t.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID')
  t.match(one('ExecStart'), /^\/usr\/bin\/node \/opt\/leaky-tokens\/dist\/cli\/main\.js start -c \/etc\/leaky\/leaky\.yaml$/)
  t.equal(one('Restart'), 'on-failure')
  t.equal(one('KillMode'), 'mixed', 'SIGTERM to the master only; it drains the generations in order')
  t.equal(one('User'), 'leaky')
  t.equal(one('StateDirectory'), 'leaky')
  t.equal(one('RuntimeDirectory'), 'leaky')
  for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes']]) t.equal(one(k), v, `${k}=${v}`)
  t.equal(one('CapabilityBoundingSet'), '', 'no capabilities (port 8080)')
  t.ok(Number(one('LimitNOFILE')) >= 65536)
  // the stop timeout must outlast the default drain
  const cfg = parseConfig(readFileSync(path.join(ROOT, 'config/leaky.yaml'), 'utf8'), 'leaky.yaml', {})
  t.ok(cfg.ok)
  if (cfg.ok) t.ok(Number(one('TimeoutStopSec')) * 1000 > cfg.config.drain_timeout, `TimeoutStopSec=${one('TimeoutStopSec')} > drain_timeout`)
  t.match(unit, /systemctl kill -s USR2 --kill-whom=main leaky/, 'the upgrade path is documented in the unit')
})

t.test('sysctl snippet and sysusers line', async (t) => {
  const sysctl = readFileSync(path.join(ROOT, 'systemd/99-leaky.conf'), 'utf8')
  const settings = sysctl.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')).map((l) => l.split('=').map((x) => x.trim()))
  t.same(settings, [['net.ipv4.tcp_migrate_req', '1']])
  const users = readFileSync(path.join(ROOT, 'systemd/leaky.sysusers'), 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'))
  t.match(users, [/^u leaky - "[^"]+" \/var\/lib\/leaky$/])
})
