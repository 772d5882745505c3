// The budgets: section and calendar token windows: what a valid entry compiles to, and every bad value as one
// `file:line:col path: message` issue — negative, NaN and overflowing amounts, unknown windows and time zones,
// thresholds, and routes naming budgets that do not exist or cannot apply.
import t from 'tap'
import { parseConfig, formatIssue, type Config } from '../../src/config/index.js'
import { compileBudgets } from '../../src/spend/budgets.js'

function load(yaml: string): Config | string[] {
  const r = parseConfig(BASE + yaml, 'c.yaml', {})
  return r.ok ? r.config : r.issues.map(formatIssue)
}

const BASE = `
upstreams:
  openai: { provider: openai, targets: [https://api.openai.com] }
keys:
  - { id: a, key: k1, org: acme }
`

t.test('a budget compiles to its amount, window, zone and sorted thresholds; routes list budgets', async (t) => {
  const c = load(`budgets:
  team: { per: org, usd: 500/month, window: calendar, timezone: Europe/Berlin, alert_at: [80%, 50%, 100%, 0.5] }
  hourly: { per: global, usd: "$2.5/hour", window: rolling }
  weekly: { per: tier, usd: 1.5k/week }
routes:
  - { path: /v1/, upstream: openai, auth: key, budgets: [team, hourly] }
`)
  if (Array.isArray(c)) return t.fail(c.join('\n'))
  t.same(c.budgets.team, { name: 'team', per: 'org', usd: 500, every: 'month', period_ms: 30 * 86_400_000, window: 'calendar', timezone: 'Europe/Berlin', alert_at: [0.5, 0.8, 1], scope: 'local' })
  t.same(c.budgets.hourly, { name: 'hourly', per: 'global', usd: 2.5, every: 'hour', period_ms: 3_600_000, window: 'rolling', timezone: 'UTC', alert_at: [], scope: 'local' })
  t.equal(c.budgets.weekly.usd, 1500)
  t.equal(c.budgets.weekly.window, 'calendar', 'calendar is the default: what a finance team means')
  t.same(c.routes[0].budgets, ['team', 'hourly'])
  const plan = compileBudgets(c.budgets, c.routes)
  const team = plan.byRoute[0][0]
  t.equal(team.limit.unitPico, 1000, '$500 a month counts in nano-USD')
  t.equal(team.limit.burst, 500e9)
  t.equal(team.units(1), 1, 'a charge rounds up: a fraction of a unit is a unit')
  t.equal(team.units(2_000_000), 2000)
  t.ok(team.limit.calendar !== null && team.limit.calendar.timeZone === 'Europe/Berlin')
  t.equal(plan.byRoute[0][1].limit.calendar, null, 'rolling: a leaky bucket')
})

t.test('a budget too big for nano-USD in its window counts in a coarser unit, exactly', async (t) => {
  const c = load('budgets:\n  big: { per: global, usd: 900M/hour }\n')
  if (Array.isArray(c)) return t.fail(c.join('\n'))
  const b = compileBudgets(c.budgets, []).all[0]
  t.ok(b.limit.unitPico > 1000)
  t.equal(b.toUsd(b.limit.burst), 900e6)
  t.ok(b.limit.t >= 1n)
})

const bad: Array<[string, string, string[]]> = [
  ['negative amount', 'budgets:\n  a: { per: org, usd: -5/month }\n',
    ['c.yaml:7:23 budgets.a.usd: a budget must be more than 0 and at most 1000000000 USD per window, got "-5/month"']],
  ['zero amount', 'budgets:\n  a: { per: org, usd: 0/month }\n',
    ['c.yaml:7:23 budgets.a.usd: a budget must be more than 0 and at most 1000000000 USD per window, got "0/month"']],
  ['NaN amount', 'budgets:\n  a: { per: org, usd: NaN/day }\n',
    ['c.yaml:7:23 budgets.a.usd: expected "USD/WINDOW" with WINDOW one of hour, day, week, month (e.g. "500/month", "20/day"), got "NaN/day"']],
  ['YAML .nan', 'budgets:\n  a: { per: org, usd: .nan }\n',
    ['c.yaml:7:23 budgets.a.usd: expected "USD/WINDOW" with WINDOW one of hour, day, week, month (e.g. "500/month", "20/day"), got NaN']],
  ['overflowing amount', 'budgets:\n  a: { per: org, usd: 5000000000/month }\n',
    ['c.yaml:7:23 budgets.a.usd: a budget must be more than 0 and at most 1000000000 USD per window, got "5000000000/month"']],
  ['overflowing exponent', 'budgets:\n  a: { per: org, usd: 1e400/month }\n',
    ['c.yaml:7:23 budgets.a.usd: a budget must be more than 0 and at most 1000000000 USD per window, got "1e400/month"']],
  ['unknown window unit, with a suggestion', 'budgets:\n  a: { per: org, usd: 5/mnth }\n',
    ['c.yaml:7:23 budgets.a.usd: expected "USD/WINDOW" with WINDOW one of hour, day, week, month (e.g. "500/month", "20/day"), got "5/mnth" (did you mean "month"?)']],
  ['unknown time zone, named', 'budgets:\n  a: { per: org, usd: 5/day, timezone: Europe/Berlinn }\n',
    ['c.yaml:7:40 budgets.a.timezone: unknown time zone "Europe/Berlinn": expected an IANA name such as "Europe/Berlin", "America/New_York" or "UTC"']],
  ['unknown subject', 'budgets:\n  a: { per: team, usd: 5/day }\n',
    ['c.yaml:7:13 budgets.a.per: expected one of key, org, tier, route, upstream, global, got "team"']],
  ['threshold above 100%', 'budgets:\n  a: { per: org, usd: 5/day, alert_at: [150%] }\n',
    ['c.yaml:7:41 budgets.a.alert_at[0]: expected a share of the budget as "N%" from above 0% to 100% (or a number from above 0 to 1), got "150%"']],
  ['timezone on a rolling budget', 'budgets:\n  a: { per: org, usd: 5/day, window: rolling, timezone: UTC }\n',
    ['c.yaml:7:57 budgets.a.timezone: timezone applies to window: calendar only (a rolling budget has no window start)']],
  ['unknown key', 'budgets:\n  a: { per: org, usd: 5/day, alert: [50%] }\n', ['c.yaml:7:30 budgets.a.alert: unknown key "alert"']],
  ['routes: unknown budget, per-org budget on an anonymous route', 'budgets:\n  a: { per: org, usd: 5/day }\nroutes:\n  - { path: /v1/, upstream: openai, budgets: [a, b] }\n', [
    'c.yaml:9:47 routes[0].budgets[0]: budget "a" is per org, but this route has auth: none (no key to count by)',
    'c.yaml:9:50 routes[0].budgets[1]: unknown budget "b" (did you mean "a"?)',
  ]],
  ['cluster budget without a redis section', 'budgets:\n  a: { per: org, usd: 5/day, scope: cluster }\n',
    ['c.yaml:7:37 budgets.a.scope: scope: cluster needs a redis section (url, sentinel or cluster) to share the budget through']],
  ['rolling cluster budget', 'redis: { url: "redis://127.0.0.1:1" }\nbudgets:\n  a: { per: org, usd: 5/day, window: rolling, scope: cluster }\n',
    ['c.yaml:8:54 budgets.a.scope: scope: cluster budgets are calendar windows in this version (window: calendar)']],
  ['on_error on a local budget', 'budgets:\n  a: { per: org, usd: 5/day, on_error: open }\n',
    ['c.yaml:7:40 budgets.a.on_error: on_error applies to scope: cluster budgets only (a local budget never talks to Redis)']],
  ['webhook: not an http(s) URL', 'webhooks:\n  - { url: "ftp://x/hook" }\n', ['c.yaml:7:12 webhooks[0].url: expected an http(s) URL, got "ftp://x/hook"']],
  ['webhook: unknown event', 'webhooks:\n  - { url: "http://x/hook", events: [budgets] }\n',
    ['c.yaml:7:38 webhooks[0].events[0]: expected one of budget, anomaly, got "budgets" (did you mean "budget"?)']],
  ['calendar token window with a burst', 'limits:\n  m: { per: key, tokens: 5M/month, window: calendar, burst: 10 }\n',
    ["c.yaml:7:61 limits.m.burst: a calendar window has no burst: the whole amount is available from the window's start"]],
  ['calendar token window of a minute', 'limits:\n  m: { per: key, tokens: 5M/min, window: calendar }\n',
    ['c.yaml:7:26 limits.m.tokens: a calendar window is one hour, day or month: write AMOUNT/hour, AMOUNT/day or AMOUNT/month']],
  ['timezone on a rolling limit', 'limits:\n  m: { per: key, tokens: 5M/min, timezone: UTC }\n',
    ['c.yaml:7:44 limits.m.timezone: timezone applies to window: calendar only (a rolling bucket has no window start)']],
]
for (const [name, yaml, want] of bad) {
  t.test(name, async (t) => {
    t.same(load(yaml), want)
  })
}

t.test('calendar token window: tokens: 5M/month, window: calendar', async (t) => {
  const c = load('limits:\n  m: { per: key, tokens: 5M/month, window: calendar, timezone: Europe/Berlin }\n')
  if (Array.isArray(c)) return t.fail(c.join('\n'))
  t.same(c.limits.m, { name: 'm', per: 'key', unit: 'tokens', amount: 5e6, period_ms: 30 * 86_400_000, burst: 5e6, scope: 'local', calendar: { unit: 'month', timezone: 'Europe/Berlin' } })
})

t.test('webhooks: defaults', async (t) => {
  const c = load('webhooks:\n  - { url: "https://hooks.example.com/leaky" }\n')
  if (Array.isArray(c)) return t.fail(c.join('\n'))
  t.same(c.webhooks, [{ url: 'https://hooks.example.com/leaky', events: ['budget'], headers: {}, timeout: 5000, attempts: 5, backoff: { min: 1000, max: 300_000 }, queue: 1000 }])
})
