// The limiter probe against a real bucket table: occupancy, the table's event counters, and per-limit fill of the
// fullest bucket among the subjects config names.
import t from 'tap'
import { parseConfig } from '../../src/config/index.js'
import { BucketTable } from '../../src/limiter/table.js'
import { compileLimit } from '../../src/limiter/limit.js'
import { tableProbe } from '../../src/observability/table-probe.js'

const r = parseConfig(`limits:
  global-tpm: { per: global, tokens: 1000/min, burst: 1000 }
  up-rpm: { per: upstream, requests: 100/min, burst: 10 }
  key-rpm: { per: key, requests: 60/min, burst: 10 }
  by-ip: { per: ip, requests: 1/s }
tiers:
  gold: { scale: 2 }
keys:
  - { id: plain-key, key: "a" }
  - { id: gold-key, key: "b", tier: gold }
upstreams:
  u1: { targets: ["http://127.0.0.1:1"] }
  u2: { targets: ["http://127.0.0.1:1"] }
`, 'p.yaml', {})
if (!r.ok) throw new Error(JSON.stringify(r.issues))
const config = r.config

t.test('fill of the fullest bucket per limit, occupancy and events', async (t) => {
  const table = BucketTable.create(1024, 'deny_new')
  const now = table.clock.now()
  const L = config.limits
  table.charge(compileLimit(L['global-tpm']), '', 900, now)
  table.charge(compileLimit(L['up-rpm']), 'u1', 2, now)
  table.charge(compileLimit(L['up-rpm']), 'u2', 5, now)
  // the gold key's burst is 20: 10 charged is half full, not full
  table.charge(compileLimit(L['key-rpm'], 2), 'gold-key', 10, now)
  table.charge(compileLimit(L['by-ip']), '10.0.0.1', 1, now)
  const probe = tableProbe(table, () => now, () => config)
  const fill = new Map(probe.fill!())
  t.equal(fill.get('global-tpm'), 0.9)
  t.equal(fill.get('up-rpm'), 0.5, 'the fuller of the two upstreams')
  t.equal(fill.get('key-rpm'), 0.5, 'measured against the tier-scaled burst')
  t.notOk(fill.has('by-ip'), 'per-ip subjects cannot be listed from config')
  const rep = probe.table()!
  t.equal(rep.used, 5)
  t.equal(rep.capacity, 1024)
  t.equal(rep.evicted, 0)
})
