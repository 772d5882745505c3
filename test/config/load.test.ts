// YAML in → ok, or every issue as `file:line:col path: message` (Envoy's config tests, table-driven as Traefik's).
import t from 'tap'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseConfig, loadConfigFile, formatIssue, DEFAULT_CONFIG_PATH, type Config } from '../../src/config/index.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

function load(yaml: string, env: NodeJS.ProcessEnv = {}): Config | string[] {
  const r = parseConfig(yaml, 'c.yaml', env)
  return r.ok ? r.config : r.issues.map(formatIssue)
}

// a valid base the cases add to: one upstream, one limit per kind of subject
const BASE = `
upstreams:
  openai: { provider: openai, targets: [https://api.openai.com] }
  qwen: { provider: qwen, targets: [embedded] }
limits:
  ip-rps: { per: ip, requests: 10/s }
  key-rpm: { per: key, requests: 600/min }
tiers:
  gold: { scale: 4 }
`

interface Case {
  name: string
  yaml: string
  /** 'ok', or the exact formatted issues in order */
  want: 'ok' | string[]
  /** for 'ok': a view of the result and what it must equal */
  check?: (c: Config) => unknown
  equals?: unknown
}

const require256 = (s: string) => createHash('sha256').update(s).digest('hex')

const cases: Case[] = [
  { name: 'empty file: every default', yaml: '', want: 'ok', check: (c) => [c.listen, c.workers, c.drain_timeout, c.routes, c.upstreams, c.admin, c.server, c.limits_table, c.log, c.stub, c.redis],
    equals: ['0.0.0.0:8080', 'auto', 30_000, [], {}, { listen: '127.0.0.1:9090', tokens: [], metrics_public: true, failed_auth: { amount: 10, period_ms: 60_000 } }, { max_body: 10_485_760, max_header: 16_384, max_inflight: 4096, trusted_proxies: [], path: { merge_slashes: true, encoded_slashes: 'reject' } }, { capacity: 65_536, when_full: 'deny_new' }, { level: 'info', access: true }, { seed: 1, ttft: 0, tokens_per_second: 0 }, undefined],
  },
  { name: 'comments only', yaml: '# nothing here\n', want: 'ok' },
  {
    name: 'admin tokens: a role, a hash or a token, kept only as its sha256',
    yaml: 'admin:\n  token: t0\n  tokens:\n    - { id: a, token: t1, role: viewer }\n    - { id: b, sha256: ' + 'ab'.repeat(32) + ', role: operator }\n',
    want: 'ok', check: (c) => [c.admin.token, c.admin.tokens],
    equals: ['t0', [{ id: 'a', role: 'viewer', sha256: require256('t1') }, { id: 'b', role: 'operator', sha256: 'ab'.repeat(32) }]],
  },
  {
    name: 'admin tokens: wrong role, both secrets',
    yaml: 'admin:\n  token: t0\n  tokens:\n    - { id: a, token: t1, role: admn }\n    - { id: token, token: t2, sha256: ' + 'ab'.repeat(32) + ', role: admin }\n',
    want: [
      'c.yaml:4:33 admin.tokens[0].role: expected one of viewer, operator, admin, got "admn" (did you mean "admin"?)',
      'c.yaml:5:27 admin.tokens[1].token: set exactly one of sha256 or token',
    ],
  },
  {
    name: 'admin tokens: an id used twice (admin.token is "token")',
    yaml: 'admin:\n  token: t0\n  tokens:\n    - { id: token, token: t1, role: viewer }\n',
    want: ['c.yaml:4:13 admin.tokens[0].id: token id "token" is used twice (admin.token has the id "token")'],
  },
  {
    name: 'audit and key store sections', yaml: 'audit: { file: /var/log/leaky/audit.log }\nkey_store: { file: /var/lib/leaky/k.sqlite, poll: 1s }\n',
    want: 'ok', check: (c) => [c.audit, c.key_store], equals: [{ file: '/var/log/leaky/audit.log' }, { file: '/var/lib/leaky/k.sqlite', poll: 1000, shared: 'none' }],
  },
  { name: 'key store shared through redis needs redis.url', yaml: 'key_store: { shared: redis }\n', want: ['c.yaml:1:22 key_store.shared: shared: redis needs redis.url (sentinel and cluster are not supported for keys)'] },
  { name: 'key store: unknown key', yaml: 'key_store: { fil: x }\n', want: ['c.yaml:1:14 key_store.fil: unknown key "fil" (did you mean "file"?)'] },

  // unknown keys, with and without a suggestion
  { name: 'unknown top-level key', yaml: 'listn: :8080', want: ['c.yaml:1:1 listn: unknown key "listn" (did you mean "listen"?)'] },
  { name: 'unknown key, nothing close', yaml: 'frobnicate: 1', want: ['c.yaml:1:1 frobnicate: unknown key "frobnicate"'] },
  {
    name: 'unknown key in a list item', yaml: `${BASE}routes:\n  - path: /v1/\n    upstrem: openai\n`,
    want: ['c.yaml:11:5 routes[0].upstream: missing required key "upstream"', 'c.yaml:12:5 routes[0].upstrem: unknown key "upstrem" (did you mean "upstream"?)'],
  },
  {
    name: 'unknown key in a map entry', yaml: 'limits:\n  a: { per: ip, requests: 1/s, brust: 5 }\n',
    want: ['c.yaml:2:32 limits.a.brust: unknown key "brust" (did you mean "burst"?)'],
  },
  {
    name: 'unknown key deep inside', yaml: 'upstreams:\n  u:\n    targets: [embedded]\n    timeouts: { conect: 1s }\n',
    want: ['c.yaml:4:17 upstreams.u.timeouts.conect: unknown key "conect" (did you mean "connect"?)'],
  },

  // references, with suggestions
  {
    name: 'unknown upstream', yaml: `${BASE}routes:\n  - { path: /v1/, upstream: opnai }\n`,
    want: ['c.yaml:11:29 routes[0].upstream: unknown upstream "opnai" (did you mean "openai"?)'],
  },
  {
    name: 'unknown limit', yaml: `${BASE}routes:\n  - { path: /v1/, upstream: openai, limits: [ip-rps, ip-rpss, zzz] }\n`,
    want: [
      'c.yaml:11:54 routes[0].limits[1]: unknown limit "ip-rpss" (did you mean "ip-rps"?)',
      'c.yaml:11:63 routes[0].limits[2]: unknown limit "zzz"',
    ],
  },
  {
    name: 'unknown tier', yaml: `${BASE}keys:\n  - { id: a, sha256: ${'a'.repeat(64)}, tier: glod }\n`,
    want: ['c.yaml:11:94 keys[0].tier: unknown tier "glod" (did you mean "gold"?)'],
  },
  {
    name: 'unknown fallback', yaml: `upstreams:\n  openai: { targets: [embedded], fallback: qwn }\n  qwen: { targets: [embedded] }\n`,
    want: ['c.yaml:2:44 upstreams.openai.fallback: unknown upstream "qwn" (did you mean "qwen"?)'],
  },
  {
    name: 'fallback to itself', yaml: `upstreams:\n  a: { targets: [embedded], fallback: a }\n`,
    want: ['c.yaml:2:39 upstreams.a.fallback: an upstream cannot fall back to itself'],
  },
  {
    name: 'fallback loop, reported once', yaml: `upstreams:\n  a: { targets: [embedded], fallback: b }\n  b: { targets: [embedded], fallback: c }\n  c: { targets: [embedded], fallback: a }\n`,
    want: ['c.yaml:2:39 upstreams.a.fallback: fallback loop: a → b → c → a'],
  },
  // models: (README "One endpoint for every provider")
  {
    name: 'models table', yaml: `${BASE}routes:\n  - path: /v1/\n    upstream: openai\n    models: { gpt-4o-mini: openai, "qwen-*": qwen, fast: gpt-4o-mini, smart: [qwen/qwen-max, fast] }\n`,
    want: 'ok', check: (c) => c.routes[0].models, equals: { 'gpt-4o-mini': 'openai', 'qwen-*': 'qwen', fast: 'gpt-4o-mini', smart: ['qwen/qwen-max', 'fast'] },
  },
  {
    name: 'models: unknown upstream or model, with a suggestion',
    yaml: `${BASE}routes:\n  - path: /v1/\n    upstream: openai\n    models: { a: opnai, b: [qwen, nothing/x] }\n`,
    want: [
      'c.yaml:13:18 routes[0].models.a: "opnai" is neither an upstream, "upstream/model", nor a model of this table (did you mean "openai"?)',
      'c.yaml:13:35 routes[0].models.b[1]: "nothing/x" is neither an upstream, "upstream/model", nor a model of this table',
    ],
  },
  {
    name: 'models: alias loop', yaml: `${BASE}routes:\n  - path: /v1/\n    upstream: openai\n    models: { a: b, b: a }\n`,
    want: ['c.yaml:13:18 routes[0].models.a: alias loop: a → b → a', 'c.yaml:13:24 routes[0].models.b: alias loop: b → a → b'],
  },
  { name: 'fallback chain without loop', yaml: `upstreams:\n  a: { targets: [embedded], fallback: b }\n  b: { targets: [embedded] }\n`, want: 'ok' },

  // combinations that cannot work
  {
    name: 'per-key limit on an anonymous route', yaml: `${BASE}routes:\n  - { path: /v1/, upstream: openai, limits: [key-rpm] }\n`,
    want: ['c.yaml:11:46 routes[0].limits[0]: limit "key-rpm" is per key, but this route has auth: none (no key to scope by)'],
  },
  { name: 'per-key limit on a key route', yaml: `${BASE}routes:\n  - { path: /v1/, upstream: openai, auth: key, limits: [key-rpm, ip-rps] }\n`, want: 'ok' },
  {
    name: 'auth: jwt', yaml: `${BASE}routes:\n  - { path: /v1/, upstream: openai, auth: jwt }\n`,
    want: ['c.yaml:11:43 routes[0].auth: auth: jwt needs a jwt section (issuer, audience, and jwks_url or keys)'],
  },
  {
    name: 'auth typo', yaml: `${BASE}routes:\n  - { path: /v1/, upstream: openai, auth: kye }\n`,
    want: ['c.yaml:11:43 routes[0].auth: expected one of key, none, jwt, got "kye" (did you mean "key"?)'],
  },
  {
    name: 'duplicate route', yaml: `${BASE}routes:\n  - { path: /v1/, upstream: openai }\n  - { path: /v1/, upstream: qwen }\n  - { path: /v1/, host: A.example.com, upstream: qwen }\n  - { path: /v1/, host: a.example.com, upstream: qwen }\n`,
    want: ['c.yaml:12:13 routes[1].path: duplicate route: same host and path as routes[0]', 'c.yaml:14:13 routes[3].path: duplicate route: same host and path as routes[2]'],
  },
  { name: 'path must start with /', yaml: `${BASE}routes:\n  - { path: v1, upstream: openai }\n`, want: ['c.yaml:11:13 routes[0].path: must start with "/", got "v1"'] },
  {
    name: 'requests and tokens both or neither',
    yaml: 'limits:\n  both: { per: ip, requests: 1/s, tokens: 1k/min }\n  none: { per: ip, burst: 5 }\n',
    want: ['c.yaml:2:43 limits.both.tokens: set exactly one of requests or tokens', 'c.yaml:3:9 limits.none: set exactly one of requests or tokens'],
  },
  {
    name: 'sha256 and key both, and neither',
    yaml: `keys:\n  - { id: a, sha256: ${'a'.repeat(64)}, key: k }\n  - { id: b }\n`,
    want: ['c.yaml:2:93 keys[0].key: set exactly one of sha256 or key', 'c.yaml:3:5 keys[1]: set exactly one of sha256 or key'],
  },
  {
    name: 'sha256 must be 64 lowercase hex', yaml: `keys:\n  - { id: a, sha256: ${'A'.repeat(64)} }\n`,
    want: [`c.yaml:2:22 keys[0].sha256: expected 64 lowercase hex digits (\`leaky key hash\` prints it), got "${'A'.repeat(64)}"`],
  },
  {
    name: 'duplicate key ids and key material',
    yaml: `keys:\n  - { id: a, key: same }\n  - { id: a, key: other }\n  - { id: c, key: same }\n`,
    want: ['c.yaml:3:11 keys[1].id: duplicate key id "a" (also keys[0])', 'c.yaml:4:5 keys[2]: same key as keys[0]: a client key must identify one entry'],
  },
  {
    name: 'a bad map name', yaml: 'limits:\n  "ip rps": { per: ip, requests: 1/s }\n',
    want: ['c.yaml:2:3 limits["ip rps"]: invalid name "ip rps": names may use letters, digits, "_", "." and "-" (1 to 48 characters)'],
  },
  {
    name: 'wrong types', yaml: 'routes: {}\nupstreams: []\nlog: { access: yes }\nserver: { trusted_proxies: 10.0.0.0/8 }\n',
    want: [
      'c.yaml:1:9 routes: expected a list, got a map',
      'c.yaml:2:12 upstreams: expected a map, got a list',
      'c.yaml:3:16 log.access: expected true or false, got "yes"',
      'c.yaml:4:28 server.trusted_proxies: expected a list, got "10.0.0.0/8"',
    ],
  },
  { name: 'top level not a map', yaml: '- a\n- b\n', want: ['c.yaml:1:1 expected a map of settings at the top level, got a list'] },
  {
    name: 'missing required keys', yaml: 'upstreams:\n  u: { provider: openai }\nlimits:\n  l: { requests: 1/s }\n',
    want: ['c.yaml:2:3 upstreams.u.targets: missing required key "targets"', 'c.yaml:4:3 limits.l.per: missing required key "per"'],
  },
  { name: 'empty targets', yaml: 'upstreams:\n  u: { targets: [] }\n', want: ['c.yaml:2:17 upstreams.u.targets: needs at least 1 item'] },
  {
    name: 'bad targets', yaml: 'upstreams:\n  u: { targets: [ftp://x, "https://me:pw@x", "http://x/?q=1", http://x:8080/base] }\n',
    want: [
      'c.yaml:2:18 upstreams.u.targets[0]: expected "embedded" or "http(s)://host[:port][/base/path]", got "ftp://x"',
      'c.yaml:2:27 upstreams.u.targets[1]: credentials in a target URL would be logged: put them in headers instead',
      'c.yaml:2:46 upstreams.u.targets[2]: a target has no query or fragment, got "http://x/?q=1"',
    ],
  },
  {
    name: 'headers: a bad header name',
    yaml: 'upstreams:\n  u: { targets: [embedded], headers: { "bad header": c } }\n',
    want: ['c.yaml:2:40 upstreams.u.headers["bad header"]: invalid name "bad header": not a valid HTTP header name'],
  },
  {
    name: 'headers: names are case-insensitive',
    yaml: 'upstreams:\n  u: { targets: [embedded], headers: { Authorization: a, AUTHORIZATION: b } }\n',
    want: ['c.yaml:2:73 upstreams.u.headers.AUTHORIZATION: header "authorization" is set twice (names are case-insensitive)'],
  },
  {
    name: 'headers normalised', yaml: 'upstreams:\n  u: { targets: [embedded], headers: { X-Api-Key: k, Authorization: "Bearer t" } }\n',
    want: 'ok', check: (c) => c.upstreams.u.headers, equals: { 'x-api-key': 'k', authorization: 'Bearer t' },
  },
  {
    name: 'listen forms', yaml: 'listen: ":8080"\nadmin: { listen: "[::1]:9091" }\n', want: 'ok',
    check: (c) => [c.listen, c.admin.listen], equals: ['0.0.0.0:8080', '[::1]:9091'],
  },
  {
    name: 'bad listen', yaml: 'listen: 8080\nadmin: { listen: "localhost:99999" }\n',
    want: [
      'c.yaml:1:9 listen: expected "host:port" (e.g. "0.0.0.0:8080", "[::1]:8080" or ":8080"), got 8080',
      'c.yaml:2:18 admin.listen: port 99999 is above 65535',
    ],
  },
  { name: 'workers as a number', yaml: 'workers: 4', want: 'ok', check: (c) => c.workers, equals: 4 },
  { name: 'workers out of range', yaml: 'workers: 65', want: ['c.yaml:1:10 workers: expected "auto" or an integer from 1 to 64, got 65'] },
  {
    name: 'trusted proxies', yaml: 'server: { trusted_proxies: [10.0.0.0/8, 192.0.2.7, "fd00::/8", "::1", 10.0.0.0/33, nope, "::ffff:1.2.3.4/128"] }\n',
    want: [
      'c.yaml:1:71 server.trusted_proxies[4]: prefix length of "10.0.0.0/33" must be from 0 to 32',
      'c.yaml:1:84 server.trusted_proxies[5]: expected an IP address or CIDR block (e.g. "10.0.0.0/8", "fd00::/8"), got "nope"',
      'c.yaml:1:90 server.trusted_proxies[6]: expected an IP address or CIDR block (e.g. "10.0.0.0/8", "fd00::/8"), got "::ffff:1.2.3.4/128"',
    ],
  },
  {
    name: 'enum typo', yaml: 'log: { level: wran }\nlimits_table: { when_full: evict }\n',
    want: [
      'c.yaml:1:15 log.level: expected one of trace, debug, info, warn, error, fatal, silent, got "wran" (did you mean "warn"?)',
      'c.yaml:2:28 limits_table.when_full: expected one of deny_new, evict_idle, got "evict"',
    ],
  },
  { name: 'cluster scope needs redis', yaml: 'limits:\n  a: { per: global, requests: 1/s, scope: cluster }\n', want: ['c.yaml:2:43 limits.a.scope: scope: cluster needs a redis section (url, sentinel or cluster) to share the bucket through'] },
  {
    name: 'cluster limits of one route in different Redis Cluster slots',
    yaml: 'redis: { cluster: { nodes: ["127.0.0.1:7000"] } }\nlimits:\n  left: { per: global, requests: 1/s, scope: cluster }\n  right: { per: global, requests: 1/s, scope: cluster }\nupstreams:\n  u: { targets: [embedded] }\nroutes:\n  - { path: /, upstream: u, limits: [left, right] }\n',
    want: ['c.yaml:8:37 routes[0].limits: cluster limits "left", "right" hash to different Redis Cluster slots, so one request cannot charge them together (CROSSSLOT); put a hash tag in redis.key_prefix, e.g. "leaky:{rl}:", to keep every bucket in one slot'],
  },
  { name: 'on_error is for cluster limits', yaml: 'limits:\n  a: { per: global, requests: 1/s, on_error: open }\n', want: ['c.yaml:2:46 limits.a.on_error: on_error applies to scope: cluster limits only (a local limit never talks to Redis)'] },
  { name: 'redis needs an address', yaml: 'redis: { mode: lease }\n', want: ['c.yaml:1:8 redis: set url, sentinel or cluster'] },
  {
    name: 'redis defaults', yaml: 'redis: { url: "redis://127.0.0.1:6379" }\n', want: 'ok',
    check: (c) => c.redis,
    equals: { url: 'redis://127.0.0.1:6379', key_prefix: 'leaky:', timeout: 50, mode: 'exact', on_error: 'local', expected_instances: 1 },
  },
  {
    name: 'keys normalised: plain key → sha256, tier → scale', yaml: `${BASE}keys:\n  - { id: a, key: test, org: acme, tier: gold }\n  - { id: b, sha256: ${'b'.repeat(64)} }\n`,
    want: 'ok', check: (c) => c.keys,
    equals: [
      // sha256("test"): the plain key itself is not kept
      { id: 'a', sha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', org: 'acme', tier: 'gold', metrics_label: false, scale: 4 },
      { id: 'b', sha256: 'b'.repeat(64), org: undefined, tier: undefined, metrics_label: false, scale: 1 },
    ],
  },
  {
    name: 'retry and breaker', yaml: 'upstreams:\n  u:\n    targets: [embedded]\n    retry: { attempts: 2, on: [connect, 429, 503, 404] }\n    breaker: { failure_ratio: 1.5 }\n',
    want: [
      'c.yaml:4:51 upstreams.u.retry.on[3]: expected connect, timeout, reset, 429 or a 5xx status, got 404',
      'c.yaml:5:31 upstreams.u.breaker.failure_ratio: expected a number greater than 0 and at most 1, got 1.5',
    ],
  },
  { name: 'an anchor holder is still an unknown key', yaml: 'x-common: &c { provider: openai }\n', want: ['c.yaml:1:1 x-common: unknown key "x-common"'] },
  {
    name: 'merge keys work inside a section', yaml: 'upstreams:\n  a: &up { provider: openai, targets: [embedded] }\n  b: { <<: *up, provider: qwen }\n',
    want: 'ok', check: (c) => [c.upstreams.b.provider, c.upstreams.b.targets], equals: ['qwen', ['embedded']],
  },
]

for (const c of cases) {
  t.test(c.name, async (t) => {
    const got = load(c.yaml)
    if (c.want === 'ok') {
      if (Array.isArray(got)) return t.fail(`expected ok, got:\n${got.join('\n')}`)
      t.pass('ok')
      if (c.check) t.strictSame(c.check(got), c.equals, 'normalised')
    } else {
      t.strictSame(got, c.want)
    }
  })
}

t.test('YAML syntax errors carry line:col and stop before validation', async (t) => {
  const cases: [string, string[]][] = [
    ['a: "unterminated\n', ['c.yaml:2:1 Missing closing "quote']],
    ['listen: [1, 2\nworkers: 3\n', ['c.yaml:2:1 Flow sequence in block collection must be sufficiently indented and end with a ]']],
    ['log:\n  level: info\n level: debug\n', ['c.yaml:3:1 All mapping items must start at the same column']],
    ['workers: 1\nworkers: 2\n', ['c.yaml:2:1 Map keys must be unique']],
    ['workers: 1\n---\nworkers: 2\n', ['c.yaml:2:1 a config file holds one YAML document: remove the extra "---"']],
    ['workers: *nope\nbogus: 1\n', ['c.yaml:1:10 workers: unknown anchor "*nope"', 'c.yaml:2:1 bogus: unknown key "bogus"']],
    ['\tworkers: 1\n', ['c.yaml:1:1 Tabs are not allowed as indentation']],
    // a YAML warning is an error here: an unknown tag would otherwise turn into a plain string
    ['workers: !custom 3\n', ['c.yaml:1:10 Unresolved tag: !custom']],
    ['limits:\n  ? { a: 1 }\n  : 2\n', ['c.yaml:2:5 limits: map keys must be plain names, not lists or maps']],
  ]
  for (const [yaml, want] of cases) t.strictSame(load(yaml), want, JSON.stringify(yaml))
})

t.test('all issues at once, in file order', async (t) => {
  const issues = load(`
routes:
  - { path: /x/, upstream: nowhere, auth: jwt }
workers: none
limits:
  l: { per: everyone, requests: 5 }
listen: 1.2.3.4
`)
  t.strictSame(issues, [
    'c.yaml:3:28 routes[0].upstream: unknown upstream "nowhere"',
    'c.yaml:3:43 routes[0].auth: auth: jwt needs a jwt section (issuer, audience, and jwks_url or keys)',
    'c.yaml:4:10 workers: expected "auto" or an integer from 1 to 64, got "none"',
    'c.yaml:6:13 limits.l.per: expected one of key, org, route, upstream, ip, global, got "everyone"',
    'c.yaml:6:33 limits.l.requests: expected a rate "AMOUNT/UNIT" with UNIT one of s, sec, min, hour, day, month (e.g. "20/s", "100k/min", "5M/day"); a bare number has no unit, got 5',
    'c.yaml:7:9 listen: expected "host:port" (e.g. "0.0.0.0:8080", "[::1]:8080" or ":8080"), got "1.2.3.4"',
  ])
})

t.test('the bad.yaml fixture: one issue of each kind', async (t) => {
  const file = path.join(root, 'test/fixtures/config/bad.yaml')
  const r = loadConfigFile(file, {})
  t.equal(r.ok, false)
  if (r.ok) return
  t.ok(r.issues.every((i) => i.file === file && i.line > 0 && i.col > 0))
  t.strictSame(r.issues.map((i) => `${i.line}:${i.col} ${i.path}`), [
    '3:9 listen', '4:10 workers', '5:16 drain_timeout', '8:34 limits.key-rpm.requests', '9:18 limits.ip-rps.per',
    '10:43 limits.both.tokens', '17:22 upstreams.openai.headers.authorization', '18:17 upstreams.openai.timeouts.conect',
    '19:15 upstreams.openai.fallback', '23:15 routes[0].upstream', '24:14 routes[0].limits[0]', '25:11 routes[1].path',
    '27:11 routes[1].auth',
  ])
  t.equal(formatIssue(r.issues[9]), `${file}:23:15 routes[0].upstream: unknown upstream "opnai" (did you mean "openai"?)`)
})

t.test('the shipped default config parses with no environment and runs on the stub', async (t) => {
  t.equal(DEFAULT_CONFIG_PATH, path.join(root, 'config/leaky.yaml'))
  t.ok(existsSync(DEFAULT_CONFIG_PATH))
  const r = loadConfigFile(DEFAULT_CONFIG_PATH, {})
  if (!r.ok) return t.fail(r.issues.map(formatIssue).join('\n'))
  const c = r.config
  t.equal(c.listen, '0.0.0.0:8080')
  t.equal(c.workers, 'auto')
  t.strictSame(Object.fromEntries(Object.entries(c.upstreams).map(([n, u]) => [n, [u.provider, u.targets]])), {
    'stub-openai': ['openai', ['embedded']], 'stub-gemini': ['gemini', ['embedded']], 'stub-qwen': ['qwen', ['embedded']],
    'stub-anthropic': ['anthropic', ['embedded']],
  })
  t.strictSame(c.routes.map((r) => [r.path, r.upstream, r.strip_prefix, r.auth, r.limits]), [
    ['/v1/', 'stub-openai', false, 'none', ['ip-rps', 'ip-tpm']],
    ['/gemini/', 'stub-gemini', true, 'none', ['ip-rps', 'ip-tpm']],
    ['/qwen/', 'stub-qwen', true, 'none', ['ip-rps', 'ip-tpm']],
    ['/anthropic/', 'stub-anthropic', true, 'none', ['ip-rps', 'ip-tpm']],
    ['/v1/messages', 'stub-anthropic', false, 'none', ['ip-rps', 'ip-tpm']],
  ])
  t.strictSame(c.limits['ip-rps'], { name: 'ip-rps', per: 'ip', unit: 'requests', amount: 20, period_ms: 1000, burst: 40, scope: 'local' })
  t.strictSame(c.limits['ip-tpm'], { name: 'ip-tpm', per: 'ip', unit: 'tokens', amount: 100_000, period_ms: 60_000, burst: 100_000, scope: 'local' })
  t.strictSame(c.keys, [])
})

t.test('DEFAULT_CONFIG_PATH from the compiled module (dist/) is the same file', async (t) => {
  const compiled = path.join(root, 'dist/config/index.js')
  t.ok(existsSync(compiled), 'dist is built (npm test builds first)')
  const mod = (await import(compiled)) as { DEFAULT_CONFIG_PATH: string }
  t.equal(mod.DEFAULT_CONFIG_PATH, DEFAULT_CONFIG_PATH)
})

t.test('the output is plain data: survives structuredClone and JSON unchanged', async (t) => {
  const r = loadConfigFile(DEFAULT_CONFIG_PATH, {})
  if (!r.ok) return t.fail('default config invalid')
  const plain = (v: unknown): boolean => {
    if (Array.isArray(v)) return v.every(plain)
    if (v !== null && typeof v === 'object') return Object.getPrototypeOf(v) === Object.prototype && Object.values(v).every(plain)
    return ['string', 'number', 'boolean', 'undefined'].includes(typeof v) || v === null
  }
  t.ok(plain(r.config))
  t.strictSame(structuredClone(r.config), r.config)
  t.strictSame(JSON.parse(JSON.stringify(r.config)), JSON.parse(JSON.stringify(structuredClone(r.config))))
})

t.test('read errors are one issue with line 0', async (t) => {
  const file = path.join(root, 'test/fixtures/config/does-not-exist.yaml')
  const r = loadConfigFile(file)
  t.strictSame(r, { ok: false, issues: [{ file, line: 0, col: 0, path: '', message: 'cannot read config: no such file' }] })
  if (!r.ok) t.equal(formatIssue(r.issues[0]), `${file}: cannot read config: no such file`)
  const dir = loadConfigFile(path.join(root, 'test/fixtures/config'))
  t.match(dir, { ok: false, issues: [{ line: 0, message: 'cannot read config: is a directory' }] })
})
