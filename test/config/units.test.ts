// Every unit kind, parsed directly and through the schema: what each accepts, what it normalises to, and the
// message a user sees for a value without (or with the wrong) unit.
import t, { type Test } from 'tap'
import { parseBackoff, parseCount, parseDuration, parseRate, parseSize, parseConfig, formatIssue, type UnitResult } from '../../src/config/index.js'

function table<T>(t: Test, parse: (v: unknown) => UnitResult<T>, ok: [unknown, T][], bad: [unknown, RegExp][]) {
  for (const [input, value] of ok) t.same(parse(input), { ok: true, value }, `${JSON.stringify(input)} → ${JSON.stringify(value)}`)
  for (const [input, message] of bad) {
    const r = parse(input)
    t.equal(r.ok, false, `${JSON.stringify(input)} is refused`)
    if (!r.ok) t.match(r.message, message, `${JSON.stringify(input)}: ${r.message}`)
  }
}

t.test('durations → ms', async (t) => {
  table(t, parseDuration, [
    ['250ms', 250], ['30s', 30_000], ['5m', 300_000], ['1h', 3_600_000], ['1d', 86_400_000], ['1.5s', 1500], [' 2s ', 2000], ['0ms', 0],
  ], [
    [30, /bare number has no unit, got 30$/],
    [30, /ms, s, m, h or d/],
    ['30', /expected a duration with a unit.*got "30"/],
    ['-1s', /got "-1s"/],
    ['1w', /got "1w"/],
    ['5 sec', /got "5 sec"/],
    [true, /got true/],
  ])
})

t.test('sizes → bytes, k = 1024', async (t) => {
  table(t, parseSize, [
    ['512b', 512], ['64kb', 65_536], ['10mb', 10_485_760], ['1gb', 1_073_741_824], ['10MB', 10_485_760], ['1.5kb', 1536],
  ], [
    [1024, /b, kb, mb or gb.*bare number has no unit, got 1024/],
    ['10mib', /got "10mib"/],
    ['kb', /got "kb"/],
  ])
})

t.test('counts → integers, k = 1000', async (t) => {
  table(t, parseCount, [
    [500, 500], ['64k', 64_000], ['64K', 64_000], ['1M', 1_000_000], ['1.5k', 1500], ['64', 64], [0, 0],
  ], [
    ['1.2345k', /whole number/],
    [-1, /got -1/],
    [1.5, /got 1.5/],
    ['1m', /got "1m"/],
    ['lots', /got "lots"/],
  ])
})

t.test('rates → { amount, period_ms }', async (t) => {
  table(t, parseRate, [
    ['20/s', { amount: 20, period_ms: 1000 }],
    ['20/sec', { amount: 20, period_ms: 1000 }],
    ['600/min', { amount: 600, period_ms: 60_000 }],
    ['100k/min', { amount: 100_000, period_ms: 60_000 }],
    ['2/hour', { amount: 2, period_ms: 3_600_000 }],
    ['5M/day', { amount: 5_000_000, period_ms: 86_400_000 }],
    ['1M/month', { amount: 1_000_000, period_ms: 30 * 86_400_000 }],
    ['0.5/s', { amount: 0.5, period_ms: 1000 }],
    ['10 / min', { amount: 10, period_ms: 60_000 }],
  ], [
    [20, /s, sec, min, hour, day, month.*bare number has no unit, got 20$/],
    ['20', /got "20"$/],
    ['20/week', /got "20\/week"/],
    ['0/s', /greater than zero/],
    ['/s', /got "\/s"/],
  ])
})

t.test('backoff ranges', async (t) => {
  table(t, parseBackoff, [['50ms..2s', { min: 50, max: 2000 }], ['1s..1s', { min: 1000, max: 1000 }]], [
    ['2s..50ms', /above its maximum/],
    ['50ms', /MIN\.\.MAX/],
    ['50..2s', /duration with a unit/],
  ])
})

function load(yaml: string) {
  const r = parseConfig(yaml, 'u.yaml', {})
  return r.ok ? r.config : r.issues.map(formatIssue)
}

t.test('units in the schema: normalised values', async (t) => {
  const c = load(`
drain_timeout: 1.5s
limits_table: { capacity: 1M }
server: { max_body: 1mb, max_header: 8kb }
stub: { ttft: 250ms }
limits:
  rpm: { per: ip, requests: 600/min }
  rare: { per: ip, requests: 1/hour }
  odd: { per: ip, requests: 1.5/s }
  tpm: { per: ip, tokens: 100k/min }
  tpd: { per: ip, tokens: 5M/day, burst: 20k }
upstreams:
  u: { targets: [embedded], timeouts: { connect: 2s }, retry: { attempts: 2, backoff: 10ms..1s } }
`)
  if (Array.isArray(c)) return t.fail(c.join('\n'))
  t.equal(c.drain_timeout, 1500)
  t.equal(c.limits_table.capacity, 1_000_000)
  t.equal(c.server.max_body, 1_048_576)
  t.equal(c.server.max_header, 8192)
  t.equal(c.stub.ttft, 250)
  // default burst: requests → one second's worth (rounded up, at least 1); tokens → one period's amount
  t.same(c.limits.rpm, { name: 'rpm', per: 'ip', unit: 'requests', amount: 600, period_ms: 60_000, burst: 10, scope: 'local' })
  t.equal(c.limits.rare.burst, 1)
  t.equal(c.limits.odd.burst, 2)
  t.same(c.limits.tpm, { name: 'tpm', per: 'ip', unit: 'tokens', amount: 100_000, period_ms: 60_000, burst: 100_000, scope: 'local' })
  t.equal(c.limits.tpd.burst, 20_000)
  t.same(c.upstreams.u.timeouts, { connect: 2000, first_byte: 120_000, idle: 60_000 })
  t.same(c.upstreams.u.retry, { attempts: 2, backoff: { min: 10, max: 1000 }, on: ['connect', 502, 503, 504], budget: 20, min_retries: 3 })
})

t.test('units in the schema: one issue per bad value, with position and accepted units', async (t) => {
  const cases: [string, string][] = [
    ['drain_timeout: 30', 'u.yaml:1:16 drain_timeout: expected a duration with a unit: ms, s, m, h or d (e.g. "250ms", "30s", "5m"); a bare number has no unit, got 30'],
    ['server: { max_body: 1024 }', 'u.yaml:1:21 server.max_body: expected a size with a unit: b, kb, mb or gb (e.g. "64kb", "10mb"; k = 1024); a bare number has no unit, got 1024'],
    ['limits_table: { capacity: 1k }', 'u.yaml:1:27 limits_table.capacity: must be from 1024 to 16000000, got "1k"'],
    ['limits_table: { capacity: 17M }', 'u.yaml:1:27 limits_table.capacity: must be from 1024 to 16000000, got "17M"'],
    ['limits: { a: { per: ip, tokens: 600 } }', 'u.yaml:1:33 limits.a.tokens: expected a rate "AMOUNT/UNIT" with UNIT one of s, sec, min, hour, day, month (e.g. "20/s", "100k/min", "5M/day"); a bare number has no unit, got 600'],
    ['limits: { a: { per: ip, tokens: 1/s, burst: 0 } }', 'u.yaml:1:45 limits.a.burst: must be at least 1, got 0'],
    ['upstreams: { u: { targets: [embedded], retry: { backoff: 1s } } }', 'u.yaml:1:58 upstreams.u.retry.backoff: expected a backoff range "MIN..MAX" of durations (e.g. "50ms..2s"), got "1s"'],
  ]
  for (const [yaml, issue] of cases) t.same(load(yaml), [issue], yaml)
})
