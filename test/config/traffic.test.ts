// Traffic settings of an upstream (README "Upstreams and traffic"): YAML in → ok, or each issue at file:line:col.
import t from 'tap'
import { parseConfig, formatIssue, type Config } from '../../src/config/index.js'

function load(yaml: string): Config | string[] {
  const r = parseConfig(yaml, 'c.yaml', {})
  return r.ok ? r.config : r.issues.map(formatIssue)
}

t.test('defaults: p2c_least_inflight, passive ejection on, no health checks, weights 1', async (t) => {
  const c = load('upstreams:\n  u: { targets: ["http://a:1", "http://b:2"] }\n') as Config
  t.equal(c.upstreams.u.balance, 'p2c_least_inflight')
  t.same(c.upstreams.u.targets, ['http://a:1', 'http://b:2'])
  t.same(c.upstreams.u.weights, [1, 1])
  t.same(c.upstreams.u.outlier, { consecutive_failures: 5, base_ejection: 10_000, max_ejection: 300_000, max_ejected_percent: 50 })
  t.equal(c.upstreams.u.health, undefined)
})

t.test('weighted targets, health checks with units', async (t) => {
  const c = load(`upstreams:
  u:
    balance: weighted
    targets: [{ url: "http://a:1", weight: 3 }, "http://b:2", { url: "http://c:3", weight: 0 }]
    health: { path: /healthz, interval: 500ms, timeout: 100ms, healthy: 1, unhealthy: 2 }
`) as Config
  t.equal(c.upstreams.u.balance, 'weighted')
  t.same(c.upstreams.u.targets, ['http://a:1', 'http://b:2', 'http://c:3'])
  t.same(c.upstreams.u.weights, [3, 1, 0])
  t.same(c.upstreams.u.health, { path: '/healthz', interval: 500, timeout: 100, healthy: 1, unhealthy: 2 })
})

t.test('a split route needs no upstream of its own: the first weighted entry is its home', async (t) => {
  const c = load('upstreams:\n  a: { targets: ["http://a:1"] }\n  b: { targets: ["http://b:1"] }\nroutes:\n  - { path: /, split: [{ upstream: a, weight: 0 }, { upstream: b, weight: 1 }], sticky: org }\n') as Config
  t.equal(c.routes[0].upstream, 'b')
  t.equal(c.routes[0].sticky, 'org')
})

t.test('adaptive: defaults, and tiers with a priority need no scale', async (t) => {
  const c = load('tiers:\n  gold: { priority: 2 }\n  bronze: { scale: 0.5 }\nupstreams:\n  u: { targets: ["http://a:1"], adaptive: { min: 2 } }\n') as Config
  t.same(c.upstreams.u.adaptive, { min: 2, max: 256, tolerance: 1.5, smoothing: 0.2, headroom: 20 })
  t.same(c.tiers, { gold: { scale: 1, priority: 2 }, bronze: { scale: 0.5, priority: 0 } })
  t.equal(load('upstreams:\n  u: { targets: ["http://a:1"] }\n').constructor, Object, 'no adaptive section: none')
})

const cases: Array<{ name: string; yaml: string; want: string[] }> = [
  {
    name: 'adaptive min above max',
    yaml: 'upstreams:\n  u:\n    targets: ["http://a:1"]\n    adaptive: { min: 50, max: 10 }\n',
    want: ['c.yaml:4:22 upstreams.u.adaptive.min: min (50) is above max (10)'],
  },
  {
    name: 'adaptive initial outside min..max, headroom over 100, an unknown key',
    yaml: 'upstreams:\n  u:\n    targets: ["http://a:1"]\n    adaptive:\n      initial: 1\n      min: 2\n  v:\n    targets: ["http://a:1"]\n    adaptive: { headroom: 120, mni: 1 }\n',
    want: [
      'c.yaml:5:16 upstreams.u.adaptive.initial: initial (1) is outside min..max (2..256)',
      'c.yaml:9:27 upstreams.v.adaptive.headroom: expected an integer from 0 to 100, got 120',
      'c.yaml:9:32 upstreams.v.adaptive.mni: unknown key "mni" (did you mean "min"?)',
    ],
  },
  {
    name: 'a bulkhead queue without max_inflight, and one without a timeout',
    yaml: 'upstreams:\n  u:\n    targets: ["http://a:1"]\n    queue: { size: 10, timeout: 1s }\n  v:\n    targets: ["http://a:1"]\n    max_inflight: 4\n    queue: { size: 10 }\n',
    want: [
      'c.yaml:4:12 upstreams.u.queue: a queue waits for a place under max_inflight: set max_inflight too',
      'c.yaml:8:5 upstreams.v.queue.timeout: missing required key "timeout"',
    ],
  },
  {
    name: 'calibrate on a limit that is not per: upstream',
    yaml: 'limits:\n  k: { per: key, requests: 10/s, calibrate: from_headers }\n  u: { per: upstream, tokens: 10k/min, calibrate: from_header }\n',
    want: [
      'c.yaml:2:45 limits.k.calibrate: calibrate: from_headers follows one provider account\'s limit: per: upstream, window: rolling only',
      'c.yaml:3:51 limits.u.calibrate: expected one of off, from_headers, got "from_header" (did you mean "from_headers"?)',
    ],
  },
  {
    name: 'a tier priority that is not an integer from 0 to 100',
    yaml: 'tiers:\n  gold: { priority: high }\n',
    want: ['c.yaml:2:21 tiers.gold.priority: expected an integer from 0 to 100, got "high"'],
  },
  {
    name: 'weights summing to 0',
    yaml: 'upstreams:\n  u:\n    targets: [{ url: "http://a:1", weight: 0 }, { url: "http://b:1", weight: 0 }]\n',
    want: ['c.yaml:3:14 upstreams.u.targets: the target weights sum to 0: no target could ever be chosen'],
  },
  {
    name: 'health path without a leading slash',
    yaml: 'upstreams:\n  u:\n    targets: ["http://a:1"]\n    health: { path: healthz }\n',
    want: ['c.yaml:4:21 upstreams.u.health.path: a health path must start with "/", got "healthz"'],
  },
  {
    name: 'unknown balance policy, with a suggestion',
    yaml: 'upstreams:\n  u:\n    targets: ["http://a:1"]\n    balance: round-robin\n',
    want: ['c.yaml:4:14 upstreams.u.balance: expected one of p2c_least_inflight, round_robin, weighted, ewma_latency, got "round-robin" (did you mean "round_robin"?)'],
  },
  {
    name: 'a bad URL inside { url, weight }, and an unknown key beside it',
    yaml: 'upstreams:\n  u:\n    targets: [{ url: "ftp://a", weight: 2 }, { url: "http://b:1", wieght: 2 }]\n',
    want: [
      'c.yaml:3:22 upstreams.u.targets[0].url: expected "embedded" or "http(s)://host[:port][/base/path]", got "ftp://a"',
      'c.yaml:3:67 upstreams.u.targets[1].wieght: unknown key "wieght"',
    ],
  },
  {
    name: 'split weights summing to 0',
    yaml: 'upstreams:\n  a: { targets: ["http://a:1"] }\nroutes:\n  - { path: /, split: [{ upstream: a, weight: 0 }] }\n',
    want: ['c.yaml:4:23 routes[0].split: the split weights sum to 0: no upstream could ever be chosen'],
  },
  {
    name: 'a split or mirror naming an unknown upstream',
    yaml: 'upstreams:\n  stable: { targets: ["http://a:1"] }\nroutes:\n  - path: /\n    split: [{ upstream: stable, weight: 95 }, { upstream: stabel, weight: 5 }]\n    mirror: { upstream: shadow }\n',
    want: [
      'c.yaml:5:59 routes[0].split[1].upstream: unknown upstream "stabel" (did you mean "stable"?)',
      'c.yaml:6:25 routes[0].mirror.upstream: unknown upstream "shadow"',
    ],
  },
  {
    name: 'a negative weight',
    yaml: 'upstreams:\n  u:\n    targets: [{ url: "http://a:1", weight: -1 }]\n',
    want: ['c.yaml:3:44 upstreams.u.targets[0].weight: expected an integer from 0 to 1000000, got -1'],
  },
]

for (const c of cases) {
  t.test(c.name, async (t) => {
    const r = load(c.yaml)
    t.ok(Array.isArray(r), 'refused')
    if (Array.isArray(r)) for (const w of c.want) t.ok(r.includes(w), `${w}\n  in ${JSON.stringify(r)}`)
  })
}
