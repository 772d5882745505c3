// The config schema: the one place a key, its default, its unit and its meaning are written. Types come from it
// (z.output), unknown keys are errors (strictObject), and secrets are marked with `secret()` so redaction is one
// generic walk. `.describe()` is the doc: the user-facing reference is generated from it.
//
// Defaults that go through a parser (durations, sizes, nested sections) use `.prefault`, which feeds the default
// through the schema as if the user had written it; `.default` is only for values already in output form.
import { createHash } from 'node:crypto'
import * as z from 'zod'
import {
  amount, backoff, bool, cidr, count, duration, HEADER_NAME_RE, hostname, int, listen, name, num, oneOf, parsed, rate, secret,
  show, size, target, text,
} from './fields.js'
import { parseJwtKey } from './jwt-key.js'
import { didYouMean } from './suggest.js'
import type { UnitResult } from './units.js'
import { CALENDAR_UNITS, type CalendarUnit, validTimeZone } from '../spend/calendar.js'

export const PROVIDERS = ['openai', 'gemini', 'qwen', 'anthropic', 'none'] as const
export const LIMIT_SUBJECTS = ['key', 'org', 'route', 'upstream', 'ip', 'global'] as const
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const
export const RETRY_CONDITIONS = ['connect', 'timeout', 'reset'] as const

const limitsTable = z.strictObject({
  capacity: count(1024, 16_000_000).prefault(65536)
    .describe('bucket slots in the shared table (count: 65536, "1M"); fixed memory, 80 bytes a slot plus a 1152-byte header; from 1024 to 16M'),
  when_full: oneOf(['deny_new', 'evict_idle']).default('deny_new')
    .describe('table full: deny_new answers 503 for new subjects; evict_idle reclaims the slot idle longest'),
})

export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const

// The TLS settings of a listener. The proxy listener is uWS's SSLApp, whose options in the pinned build are key,
// cert, passphrase and a CA file only: its minimum version is fixed at TLS 1.2 by uSockets, and a client CA makes
// it verify a certificate the client sends without requiring one (SSL_VERIFY_PEER alone) and without showing the
// certificate to JS (no getX509Certificate in uWebSockets.js 20.30). So the proxy listener takes only what it can
// honour; the admin listener (node:https) takes everything.
function listenerTls(where: 'proxy' | 'admin') {
  return z.strictObject({
    cert: text().describe('PEM certificate file, leaf first then intermediates; re-read on reload'),
    key: text().describe('PEM private key file of cert; re-read on reload'),
    passphrase: secret(text()).optional().describe('passphrase of an encrypted key (use ${env:NAME})'),
    min_version: oneOf(TLS_VERSIONS).default('TLSv1.2').describe('lowest TLS version accepted'),
    client_ca: text().optional().describe('PEM file of the CAs a client certificate must chain to'),
    client_cert: oneOf(['optional', 'require']).optional()
      .describe('with client_ca: optional verifies a certificate the client sends; require also refuses clients without one'),
  }).transform((v, ctx) => {
    if (where === 'proxy' && v.min_version !== 'TLSv1.2') {
      ctx.addIssue({ code: 'custom', path: ['min_version'], message: 'the proxy listener (uWebSockets.js 20.30 SSLApp) has no minimum-version setting: it accepts TLS 1.2 and 1.3, fixed in uSockets' })
      return z.NEVER
    }
    if (v.client_cert !== undefined && v.client_ca === undefined) {
      ctx.addIssue({ code: 'custom', path: ['client_cert'], message: 'client_cert needs client_ca (the CAs to verify client certificates with)' })
      return z.NEVER
    }
    if (where === 'proxy' && v.client_cert === 'require') {
      ctx.addIssue({ code: 'custom', path: ['client_cert'], message: 'require is not possible on the proxy listener: uWebSockets.js 20.30 verifies a client certificate when one is sent (a bad one is refused in the handshake) but cannot refuse a client that sends none; use optional' })
      return z.NEVER
    }
    return { ...v, client_cert: v.client_ca === undefined ? undefined : (v.client_cert ?? 'optional') }
  })
}

export const ADMIN_ROLES = ['viewer', 'operator', 'admin'] as const

const adminToken = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'token ids may use letters, digits, "_", "." and "-" (1 to 64 characters)')
    .describe('name of the token in the audit log'),
  sha256: secret(z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (`leaky key hash` prints it)')).optional()
    .describe('sha256 of the bearer token (set this or token)'),
  token: secret(text()).optional().describe('the plain token, usually "${env:NAME}" or "${file:…}"; kept only as its sha256'),
  role: oneOf(ADMIN_ROLES).describe('viewer: /status, /status.json, /metrics; operator: + reload, drain; admin: + keys'),
}).transform((v, ctx) => {
  if ((v.sha256 === undefined) === (v.token === undefined)) {
    ctx.addIssue({ code: 'custom', path: v.token !== undefined ? ['token'] : [], message: 'set exactly one of sha256 or token' })
    return z.NEVER
  }
  return { id: v.id, role: v.role, sha256: v.sha256 ?? createHash('sha256').update(v.token as string).digest('hex') }
})

const admin = z.strictObject({
  listen: listen().prefault('127.0.0.1:9090').describe('admin listener: /live /ready /metrics /status'),
  tls: listenerTls('admin').optional().describe('serve the admin listener over HTTPS (node:https)'),
  token: secret(text()).optional().describe('bearer token with the admin role (id "token"); unset and no tokens = no auth (keep listen local)'),
  tokens: z.array(adminToken).default([]).describe('bearer tokens with roles: viewer, operator, admin'),
  metrics_public: bool().default(true).describe('serve /metrics without the token'),
  failed_auth: rate().prefault('10/min')
    .describe('failed authentications allowed per source address; beyond it 429 until the window has passed'),
}).transform((v, ctx) => {
  const ids = new Set<string>()
  for (const [i, t] of v.tokens.entries()) {
    if (ids.has(t.id) || (t.id === 'token' && v.token !== undefined)) ctx.addIssue({ code: 'custom', path: ['tokens', i, 'id'], message: `token id "${t.id}" is used twice (admin.token has the id "token")` })
    ids.add(t.id)
  }
  return v
})

const audit = z.strictObject({
  file: text().optional().describe('append-only JSON lines file (reopened on SIGUSR1, for logrotate); unset = stderr'),
})

const keyStore = z.strictObject({
  file: text().optional().describe('SQLite file of the runtime keys; default: leaky-keys.sqlite beside state_file (neither set: runtime keys off)'),
  poll: duration().prefault('250ms').describe('how often the file is checked for changes made by `leaky key` (other processes)'),
  shared: oneOf(['none', 'redis']).default('none')
    .describe('redis: runtime keys are shared by every proxy on the same redis.url (each keeps its own SQLite copy)'),
})

const ledger = z.strictObject({
  enabled: bool().default(true).describe('false: no ledger even when state_file gives it a place'),
  file: text().optional().describe('SQLite file of the usage ledger; default: leaky-usage.sqlite beside state_file (neither set: ledger off)'),
  flush: duration().prefault('5s').describe('how often summed rows are written (a kill -9 loses at most this, plus 1 s)'),
  retention: z.strictObject({
    minutes: duration().prefault('14d').describe('how long per-minute rows are kept'),
    days: duration().prefault('400d').describe('how long per-day rows are kept'),
  }).prefault({}),
  postgres: z.strictObject({
    url: secret(z.string().regex(/^postgres(ql)?:\/\//, 'expected postgres://… or postgresql://…'))
      .describe('postgres://user:pass@host:port/db — every proxy of a fleet ships its minute rows there'),
    proxy: text().optional().describe('the id this proxy\'s rows carry in Postgres (unique in the fleet); default: the host name'),
    interval: duration().prefault('10s').describe('how often unshipped rows are sent (they wait in SQLite while Postgres is down)'),
  }).optional().describe('ship the ledger to Postgres (idempotent per proxy and row; reports can read it: leaky usage --from postgres)'),
  anomaly: z.strictObject({
    enabled: bool().default(true).describe('judge each key\'s and org\'s tokens and cost per minute against their own baseline'),
    factor: z.number().gt(1).max(1000).default(5).describe('a minute over factor × the baseline (mean + mean deviation) is an anomaly'),
    min_tokens: count(0).default(10_000).describe('and at least this many tokens in the minute'),
    min_cost_usd: z.number().min(0).max(1_000_000).default(0.1).describe('or, for cost, at least this many USD in the minute'),
    half_life: duration().prefault('6h').describe('how fast the baseline forgets (EWMA half-life)'),
    warmup: duration().prefault('1h').describe('history a key or org needs before it is judged'),
  }).prefault({}).describe('usage anomalies: a warn line "usage anomaly" and leaky_usage_anomalies_total'),
})

const server = z.strictObject({
  max_body: size().prefault('10mb').describe('largest request body accepted (413 beyond)'),
  max_header: size().prefault('16kb').describe('largest request header block accepted (431 beyond)'),
  max_inflight: int(1).default(4096).describe('requests in flight across all workers; beyond it 503 + Retry-After'),
  trusted_proxies: z.array(cidr()).default([])
    .describe('peers whose X-Forwarded-For is believed (IP or CIDR); the client IP is taken from the first untrusted hop'),
  path: z.strictObject({
    merge_slashes: bool().default(true).describe('merge runs of "/" before routing and forwarding'),
    encoded_slashes: oneOf(['reject', 'keep']).default('reject')
      .describe('%2F / %5C in a path: reject answers 400; keep forwards them undecoded'),
  }).prefault({}).describe('path normalisation before routing: dot segments resolved, unreserved escapes decoded'),
})

const log = z.strictObject({
  level: oneOf(LOG_LEVELS).default('info').describe('pino log level'),
  access: bool().default(true).describe('one access-log line per request'),
})

const WINDOWS = ['rolling', 'calendar'] as const
/** a rate's period (units.ts) as a calendar window */
const CALENDAR_PERIOD: Record<number, CalendarUnit> = { 3_600_000: 'hour', 86_400_000: 'day', 2_592_000_000: 'month' }

/** An IANA time zone Intl knows; the error names the zone it does not. */
const timeZone = () => parsed((v): UnitResult<string> => {
  if (typeof v === 'string' && validTimeZone(v)) return { ok: true, value: v }
  return { ok: false, message: `unknown time zone ${show(v)}: expected an IANA name such as "Europe/Berlin", "America/New_York" or "UTC"` }
})

const limitEntry = z.strictObject({
  per: oneOf(LIMIT_SUBJECTS).describe('what a bucket belongs to: one bucket per key, org, route, upstream, client ip, or one global'),
  requests: rate().optional().describe('request rate, e.g. "600/min" (set this or tokens)'),
  tokens: rate().optional().describe('token rate (prompt + completion), e.g. "100k/min" (set this or requests)'),
  burst: count(1).optional()
    .describe('bucket size; default: tokens → one period\'s amount, requests → one second\'s worth (at least 1)'),
  scope: oneOf(['local', 'cluster']).default('local').describe('local: this proxy\'s buckets; cluster: shared through redis'),
  on_error: oneOf(['open', 'closed', 'local']).optional()
    .describe('scope: cluster only — when Redis fails: open admits, closed denies (503), local uses this proxy\'s share; default redis.on_error'),
  window: oneOf(WINDOWS).default('rolling')
    .describe('rolling: a leaky bucket (drains continuously); calendar: the whole amount per calendar hour, day or month, reset at its start in timezone (no burst)'),
  timezone: timeZone().optional().describe('window: calendar only — IANA zone the window starts in; default UTC'),
  calibrate: oneOf(['off', 'from_headers']).default('off')
    .describe('per: upstream only — from_headers: the rate follows the limit the provider reports (x-ratelimit-limit-*, anthropic-ratelimit-*-limit, read as per minute) once it has reported one (README "Upstreams and traffic")'),
}).transform((v, ctx) => {
  const r = v.requests ?? v.tokens
  if (r === undefined || (v.requests !== undefined && v.tokens !== undefined)) {
    ctx.addIssue({ code: 'custom', path: v.tokens !== undefined ? ['tokens'] : [], message: 'set exactly one of requests or tokens' })
    return z.NEVER
  }
  const unit = v.requests !== undefined ? 'requests' as const : 'tokens' as const
  const burst = v.burst ?? Math.max(1, Math.ceil(unit === 'tokens' ? r.amount : (r.amount * 1000) / r.period_ms))
  if (v.on_error !== undefined && v.scope !== 'cluster') {
    ctx.addIssue({ code: 'custom', path: ['on_error'], message: 'on_error applies to scope: cluster limits only (a local limit never talks to Redis)' })
    return z.NEVER
  }
  if (v.window === 'rolling') {
    if (v.timezone !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['timezone'], message: 'timezone applies to window: calendar only (a rolling bucket has no window start)' })
      return z.NEVER
    }
  } else {
    if (v.burst !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['burst'], message: 'a calendar window has no burst: the whole amount is available from the window\'s start' })
      return z.NEVER
    }
    if (v.scope === 'cluster') {
      ctx.addIssue({ code: 'custom', path: ['scope'], message: 'window: calendar is counted per proxy (scope: local) in this version' })
      return z.NEVER
    }
  }
  if (v.calibrate !== 'off' && (v.per !== 'upstream' || v.window !== 'rolling')) {
    ctx.addIssue({ code: 'custom', path: ['calibrate'], message: 'calibrate: from_headers follows one provider account\'s limit: per: upstream, window: rolling only' })
    return z.NEVER
  }
  const calUnit = v.window === 'calendar' ? CALENDAR_PERIOD[r.period_ms] : undefined
  if (v.window === 'calendar' && calUnit === undefined) {
    ctx.addIssue({ code: 'custom', path: [v.requests !== undefined ? 'requests' : 'tokens'], message: 'a calendar window is one hour, day or month: write AMOUNT/hour, AMOUNT/day or AMOUNT/month' })
    return z.NEVER
  }
  const out = {
    per: v.per, unit, amount: r.amount, period_ms: r.period_ms, burst, scope: v.scope,
    ...(v.calibrate === 'off' ? {} : { calibrate: v.calibrate }),
    ...(calUnit === undefined ? {} : { calendar: { unit: calUnit, timezone: v.timezone ?? 'UTC' } }),
  }
  return v.on_error === undefined ? out : { ...out, on_error: v.on_error }
})

export const BUDGET_SUBJECTS = ['key', 'org', 'tier', 'route', 'upstream', 'global'] as const
const BUDGET_PERIOD_MS: Record<CalendarUnit, number> = { hour: 3_600_000, day: 86_400_000, week: 7 * 86_400_000, month: 30 * 86_400_000 }
/** the largest budget accepted, USD per window: beyond it a typo, and cost arithmetic would leave exact integers */
export const MAX_BUDGET_USD = 1e9
const BUDGET_RE = /^\$?\s*(-?\d+(?:\.\d+)?(?:e\d+)?)\s*(k|K|M)?\s*\/\s*(\w+)$/

/** "500/month", "$20/day", "1.5k/week" → USD and the window unit. */
const budgetUsd = () => parsed((v): UnitResult<{ usd: number; every: CalendarUnit }> => {
  const hint = `expected "USD/WINDOW" with WINDOW one of ${CALENDAR_UNITS.join(', ')} (e.g. "500/month", "20/day"), got ${show(v)}`
  const m = typeof v === 'string' ? BUDGET_RE.exec(v.trim()) : null
  if (m === null) return { ok: false, message: hint }
  const unit = m[3] as CalendarUnit
  if (!CALENDAR_UNITS.includes(unit)) return { ok: false, message: `${hint}${didYouMean(m[3], CALENDAR_UNITS)}` }
  const usd = Number(m[1]) * (m[2] === undefined ? 1 : m[2] === 'M' ? 1e6 : 1e3)
  if (!Number.isFinite(usd) || usd <= 0 || usd > MAX_BUDGET_USD) {
    return { ok: false, message: `a budget must be more than 0 and at most ${MAX_BUDGET_USD} USD per window, got ${show(v)}` }
  }
  return { ok: true, value: { usd, every: unit } }
})

/** "80%" (or 0.8) → 0.8; thresholds from above 0 up to 100 % of the budget. */
const percent = () => parsed((v): UnitResult<number> => {
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*%$/.exec(v.trim()) : null
  const f = m !== null ? Number(m[1]) / 100 : typeof v === 'number' ? v : NaN
  if (Number.isFinite(f) && f > 0 && f <= 1) return { ok: true, value: f }
  return { ok: false, message: `expected a share of the budget as "N%" from above 0% to 100% (or a number from above 0 to 1), got ${show(v)}` }
})

const budgetEntry = z.strictObject({
  per: oneOf(BUDGET_SUBJECTS).describe('whose spend is counted: one budget per key, org, tier, route, upstream, or one global'),
  usd: budgetUsd().describe('USD per window: "500/month", "20/day", "5/hour", "100/week"'),
  window: oneOf(WINDOWS).default('calendar')
    .describe('calendar: resets at the start of each hour, day, ISO week (Monday) or month in timezone; rolling: a leaky bucket holding one window\'s amount (month = 30 days)'),
  timezone: timeZone().optional().describe('window: calendar only — IANA zone the window starts in (e.g. Europe/Berlin); default UTC'),
  alert_at: z.array(percent()).default([])
    .describe('shares of the budget ("50%", "80%", "100%") whose crossing logs one line and counts leaky_budget_alerts_total, once per window'),
  scope: oneOf(['local', 'cluster']).default('local')
    .describe('local: this proxy\'s spend; cluster: every proxy on the same Redis counts into one budget (calendar windows)'),
  on_error: oneOf(['open', 'closed', 'local']).optional()
    .describe('scope: cluster only — when Redis fails: open admits uncounted, closed denies (503), local counts on this proxy\'s share (usd / expected_instances); default redis.on_error'),
}).transform((v, ctx) => {
  if (v.window === 'rolling' && v.timezone !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['timezone'], message: 'timezone applies to window: calendar only (a rolling budget has no window start)' })
    return z.NEVER
  }
  if (v.scope === 'cluster' && v.window !== 'calendar') {
    ctx.addIssue({ code: 'custom', path: ['scope'], message: 'scope: cluster budgets are calendar windows in this version (window: calendar)' })
    return z.NEVER
  }
  if (v.on_error !== undefined && v.scope !== 'cluster') {
    ctx.addIssue({ code: 'custom', path: ['on_error'], message: 'on_error applies to scope: cluster budgets only (a local budget never talks to Redis)' })
    return z.NEVER
  }
  const out = {
    per: v.per, usd: v.usd.usd, every: v.usd.every, period_ms: BUDGET_PERIOD_MS[v.usd.every], window: v.window,
    timezone: v.timezone ?? 'UTC', alert_at: [...new Set(v.alert_at)].sort((a, b) => a - b), scope: v.scope,
  }
  return v.on_error === undefined ? out : { ...out, on_error: v.on_error }
})

const tierEntry = z.strictObject({
  scale: num(0).default(1).describe('multiplies rate and burst of per-key limits for keys in this tier (> 0)'),
  priority: int(0, 100).default(0)
    .describe('load shedding order under an upstream\'s adaptive concurrency limit: higher is shed later (keys without a tier: 0)'),
})

const SHA256_RE = /^[0-9a-f]{64}$/
const KEY_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/

const keyEntry = z.strictObject({
  id: z.string().regex(KEY_ID_RE, 'key ids may use letters, digits, "_", "." and "-" (1 to 64 characters)')
    .describe('stable name of the key: logs, metrics, bucket subject'),
  sha256: secret(z.string().regex(SHA256_RE, 'expected 64 lowercase hex digits (`leaky key hash` prints it)')).optional()
    .describe('sha256 of the key the client sends (set this or key)'),
  key: secret(text()).optional().describe('the plain key, usually "${env:NAME}"; kept only as its sha256 (set this or sha256)'),
  org: text().optional().describe('organisation the key belongs to (subject of per: org limits)'),
  tier: name().optional().describe('tier name (see tiers)'),
  metrics_label: bool().default(false).describe('label metrics with this key id (keep the label set small)'),
}).transform((v, ctx) => {
  if ((v.sha256 === undefined) === (v.key === undefined)) {
    ctx.addIssue({ code: 'custom', path: v.key !== undefined ? ['key'] : [], message: 'set exactly one of sha256 or key' })
    return z.NEVER
  }
  const sha256 = v.sha256 ?? createHash('sha256').update(v.key as string).digest('hex')
  return { id: v.id, sha256, org: v.org, tier: v.tier, metrics_label: v.metrics_label }
})

const headers = z.record(
  z.string().regex(HEADER_NAME_RE, 'not a valid HTTP header name'),
  secret(z.string()),
).transform((h, ctx) => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(h)) {
    const lower = k.toLowerCase()
    if (lower in out) ctx.addIssue({ code: 'custom', path: [k], message: `header "${lower}" is set twice (names are case-insensitive)` })
    out[lower] = v
  }
  return out
})

const retryOn = parsed((v) => {
  if (typeof v === 'string' && (RETRY_CONDITIONS as readonly string[]).includes(v)) {
    return { ok: true, value: v as (typeof RETRY_CONDITIONS)[number] | number }
  }
  if (typeof v === 'number' && Number.isInteger(v) && (v === 429 || (v >= 500 && v <= 599))) return { ok: true, value: v }
  return { ok: false, message: `expected connect, timeout, reset, 429 or a 5xx status, got ${show(v)}` }
})

export const BALANCE_POLICIES = ['p2c_least_inflight', 'round_robin', 'weighted', 'ewma_latency'] as const

const weightedTarget = z.strictObject({
  url: target().describe('"http(s)://host[:port][/base/path]" or "embedded"'),
  weight: int(0, 1_000_000).default(1).describe('share of requests relative to the other targets (0: none, kept for health checks)'),
})

// A target is a URL or { url, weight }; a union would answer a bad URL with "no union member matched", so each
// form is parsed by its own schema and its issues are passed on as they are
const targetEntry = z.unknown().transform((v, ctx): string | { url: string; weight: number } => {
  const r = v !== null && typeof v === 'object' && !Array.isArray(v) ? weightedTarget.safeParse(v) : target().safeParse(v)
  if (r.success) return r.data
  for (const issue of r.error.issues) ctx.addIssue(issue as unknown as Parameters<typeof ctx.addIssue>[0])
  return z.NEVER
})

const outlier = z.strictObject({
  consecutive_failures: int(0, 1000).default(5).describe('failures in a row that eject a target (0: never eject)'),
  base_ejection: duration().prefault('10s').describe('first ejection time; each further ejection doubles it'),
  max_ejection: duration().prefault('5m').describe('longest ejection time'),
  max_ejected_percent: int(0, 100).default(50).describe('at most this share of the targets is ejected at once (at least one target may always be ejected when there are several)'),
})

const health = z.strictObject({
  path: z.string().startsWith('/', 'a health path must start with "/"').describe('path requested with GET on each target (appended to its base path); 2xx is healthy'),
  interval: duration().prefault('10s').describe('time between two checks of one target'),
  timeout: duration().prefault('2s').describe('a check not answered in this time fails'),
  healthy: int(1, 100).default(2).describe('checks in a row that pass before an unhealthy target is used again'),
  unhealthy: int(1, 100).default(3).describe('checks in a row that fail before a target is left out'),
})

const adaptive = z.strictObject({
  min: int(1, 100_000).default(4).describe('the limit never goes below this'),
  max: int(1, 100_000).default(256).describe('the limit never goes above this'),
  initial: int(1, 100_000).optional().describe('the limit before the first samples (default: max)'),
  tolerance: z.number().min(1).default(1.5).describe('latency growth tolerated before the limit shrinks: short-term / long-term average above this is queueing'),
  smoothing: z.number().gt(0).max(1).default(0.2).describe('weight of one sample\'s verdict in the new limit (Gradient2\'s smoothing)'),
  headroom: int(0, 100).default(20)
    .describe('percent of the limit kept for higher priorities: the lowest tier may use limit × (100 - headroom) %, the highest all of it'),
}).transform((a, ctx) => {
  if (a.min > a.max) {
    ctx.addIssue({ code: 'custom', path: ['min'], message: `min (${a.min}) is above max (${a.max})` })
    return z.NEVER
  }
  if (a.initial !== undefined && (a.initial < a.min || a.initial > a.max)) {
    ctx.addIssue({ code: 'custom', path: ['initial'], message: `initial (${a.initial}) is outside min..max (${a.min}..${a.max})` })
    return z.NEVER
  }
  return a
})

const upstreamEntry = z.strictObject({
  provider: oneOf(PROVIDERS).default('none')
    .describe('API shape, for reading token usage and error bodies: openai (also Azure OpenAI and OpenAI-compatible servers) | gemini | qwen | anthropic | none (plain HTTP)'),
  targets: z.array(targetEntry).min(1)
    .describe('"http(s)://host[:port][/base/path]" or "embedded" (the built-in stub), or { url, weight } (README "Upstreams and traffic")'),
  balance: oneOf(BALANCE_POLICIES).default('p2c_least_inflight')
    .describe('how a request picks a target: p2c_least_inflight (two random targets, the one with fewer requests in flight across all workers), round_robin, weighted (smooth weighted round-robin by weight), ewma_latency (p2c on latency × in flight)'),
  outlier: outlier.prefault({})
    .describe('passive ejection: a target failing in a row (connect error, reset, timeout, 5xx) is left out for a growing time'),
  health: health.optional().describe('active health checks: GET path on every target every interval, from the main thread'),
  headers: headers.prefault({}).describe('headers added to every request (credentials: use ${env:NAME}); names lower-cased'),
  preserve_host: bool().default(false).describe('send the client\'s Host header instead of the target\'s'),
  pool: z.strictObject({
    connections: int(1, 65535).default(64).describe('keep-alive connections per target'),
  }).prefault({}),
  timeouts: z.strictObject({
    connect: duration().prefault('5s').describe('TCP + TLS connect'),
    first_byte: duration().prefault('120s').describe('request sent → response headers (LLMs think before answering)'),
    idle: duration().prefault('60s').describe('longest silence between two body chunks'),
  }).prefault({}),
  retry: z.strictObject({
    attempts: int(0, 10).default(0).describe('extra attempts, only while nothing has been sent to the client'),
    backoff: backoff().prefault('50ms..2s').describe('exponential backoff with jitter, "MIN..MAX"'),
    on: z.array(retryOn).default(['connect', 502, 503, 504]).describe('connect | timeout | reset | 429 | 5xx status'),
    budget: int(0, 100).default(20).describe('retry budget: retries in flight at most this percent of the upstream\'s requests in flight (all workers)'),
    min_retries: int(0).default(3).describe('retries in flight always allowed, whatever the budget says (so a quiet upstream can still retry)'),
  }).optional(),
  breaker: z.strictObject({
    failure_ratio: num(0, 1).default(0.5).describe('failed share of requests in the window that opens the breaker'),
    min_requests: int(1).default(20).describe('requests in the window before the ratio counts'),
    window: duration().prefault('10s').describe('sliding window the ratio is measured over'),
    cooldown: duration().prefault('15s').describe('open time before one trial request is let through'),
  }).optional(),
  fallback: name().optional().describe('upstream tried when this one fails or its breaker is open'),
  max_inflight: int(1).optional().describe('bulkhead: requests of routes to this upstream in flight at once, all workers together; beyond it 503 LEAKY_OVERLOADED + Retry-After'),
  queue: z.strictObject({
    size: int(1, 1_000_000).describe('requests waiting at most, all workers together; beyond it 503 LEAKY_OVERLOADED at once'),
    timeout: duration().describe('how long a request waits for a place before 503 LEAKY_OVERLOADED'),
  }).optional().describe('bulkhead wait queue (needs max_inflight): beyond max_inflight requests wait, first in first out, instead of a 503 at once'),
  adaptive: adaptive.optional()
    .describe('adaptive concurrency limit (Gradient2): the in-flight bound follows the latency to response headers, all workers together; shed by tier priority (README "Upstreams and traffic")'),
  tls: z.strictObject({
    ca: text().optional().describe('PEM file of the CAs trusted for this upstream, instead of Node\'s bundled list'),
    servername: hostname().optional().describe('name sent in SNI and checked against the certificate (default: the target\'s host)'),
    cert: text().optional().describe('PEM client certificate file, for upstreams that require mutual TLS (with key)'),
    key: text().optional().describe('PEM private key file of cert'),
    passphrase: secret(text()).optional().describe('passphrase of an encrypted key'),
    insecure_skip_verify: bool().default(false)
      .describe('accept any upstream certificate (warned at start, gauge leaky_upstream_tls_insecure); never in production'),
  }).optional().describe('TLS to https:// targets; verification is always on unless insecure_skip_verify'),
  default_max_tokens: int(1).default(1024).describe('output tokens assumed when the client sets no max (for the estimate)'),
  prompt_estimate: oneOf(['exact', 'bytes']).default('exact')
    .describe('exact: the prompt counted with the tokenizer before the pre-charge; bytes: its UTF-8 byte count, an upper bound of any byte-level BPE count, no tokenizer on the hot path (counted only before a denial or when the response reports no usage; routes with budgets or cluster limits, and bodies over 32 KiB, count exactly)'),
}).transform((v, ctx) => {
  // targets become plain URLs (what every other part reads) and their weights a list beside them
  const targets: string[] = []
  const weights: number[] = []
  let sum = 0
  for (const t of v.targets) {
    targets.push(typeof t === 'string' ? t : t.url)
    const w = typeof t === 'string' ? 1 : t.weight
    weights.push(w)
    sum += w
  }
  if (sum === 0) {
    ctx.addIssue({ code: 'custom', path: ['targets'], message: 'the target weights sum to 0: no target could ever be chosen' })
    return z.NEVER
  }
  if (v.queue !== undefined && v.max_inflight === undefined) {
    ctx.addIssue({ code: 'custom', path: ['queue'], message: 'a queue waits for a place under max_inflight: set max_inflight too' })
    return z.NEVER
  }
  return { ...v, targets, weights }
})

const routeCache = z.strictObject({
  ttl: duration().prefault('1h').describe('how long a stored answer is served'),
  max_entry: size().prefault('1mb').describe('largest request body or answer stored; larger ones bypass the cache'),
  scope: oneOf(['key', 'org', 'global']).default('key')
    .describe('whose answers may be shared: key (default), org (a key without an org: its own), global (everyone on the route)'),
  methods: z.array(oneOf(['GET', 'POST'])).default(['POST']).describe('methods looked up and stored'),
  when: oneOf(['deterministic', 'always']).default('deterministic')
    .describe('deterministic: only requests with temperature 0 or a seed; always: every JSON request'),
  replay_pace: oneOf(['unpaced', 'original']).default('unpaced')
    .describe('a stored stream is replayed at once (unpaced) or with the gaps between its chunks as they came (original)'),
  stale_while_revalidate: duration().prefault('0ms')
    .describe('past ttl, an entry is still served (x-cache: STALE) for this long while one request refreshes it'),
}).describe('exact-match response cache for this route (README "Cache")')

const cacheSection = z.strictObject({
  memory: size().prefault('256mb').describe('bytes of stored answers, all worker threads together; least recently used evicted first'),
  charge_tokens: bool().default(false).describe('a hit charges the stored answer\'s tokens on token limits (false: only request limits)'),
  ignore: z.array(text()).default(['user', 'stream_options', 'metadata'])
    .describe('top-level body fields left out of the cache key'),
  xfetch_beta: z.number().min(0).max(100).default(1).describe('probabilistic early refresh (XFetch): higher refreshes earlier; 0 turns it off'),
  wait: duration().prefault('60s').describe('how long a coalesced request waits for the first bytes of its leader\'s answer'),
  redis: bool().default(false)
    .describe('also store answers in redis.url, shared by every proxy on it; the local cache stays in front'),
}).describe('response cache shared by all worker threads (README "Cache")')

const routeEntry = z.strictObject({
  path: z.string().startsWith('/', 'must start with "/"').describe('path prefix; the longest matching prefix wins'),
  host: hostname().optional().describe('match only this Host (port ignored); routes without host match any'),
  upstream: text().optional().describe('upstream name (set this or split)'),
  split: z.array(z.strictObject({
    upstream: text().describe('upstream name'),
    weight: int(0, 1_000_000).describe('share of the route\'s clients sent to it, relative to the other entries'),
  })).min(1).optional().describe('traffic split (canary, blue/green): each client (sticky) goes to one upstream, by weight'),
  sticky: oneOf(['key', 'org', 'ip']).default('key')
    .describe('what keeps a client on one side of a split: its key id, its org (falls back to the key), or its IP'),
  upstream_override: z.array(text()).default([])
    .describe('key ids allowed to pick the upstream with the x-leaky-upstream header (one of the split\'s, or the route\'s)'),
  mirror: z.strictObject({
    upstream: text().describe('upstream that gets a copy of the request; its answer is discarded'),
    percent: z.number().min(0).max(100).default(100).describe('share of requests copied'),
  }).optional().describe('shadow traffic: never slows the client, never charged to its limits'),
  strip_prefix: bool().default(false).describe('remove the path prefix before forwarding'),
  auth: oneOf(['key', 'none', 'jwt']).default('none')
    .describe('key: a virtual key is required (401 without); jwt: a bearer JWT verified against the jwt section (401 without); none: anonymous (limits per ip/route/upstream/global)'),
  limits: z.array(text()).default([]).describe('limit names charged for every request on this route (all or nothing)'),
  budgets: z.array(text()).default([]).describe('budget names (budgets:) charged with each LLM request\'s cost on this route'),
  cache: routeCache.optional(),
  models: z.record(text(), z.union([text(), z.array(text())])).optional()
    .describe('route by the request\'s model (README "One endpoint for every provider"): name, "prefix-*" or alias → upstream, "upstream/model", another name of the table, or a list of those (fallback order); OpenAI chat completions are translated for gemini and anthropic upstreams'),
  max_inflight: int(1).optional().describe('bulkhead: requests of this route forwarded at once, all workers together; beyond it 503 LEAKY_OVERLOADED + Retry-After'),
}).transform((r, ctx) => {
  if (r.models !== undefined && (r.split !== undefined || r.upstream_override.length > 0)) {
    // a models route chooses its upstream by the request's model: a second choice by weight would contradict it
    ctx.addIssue({ code: 'custom', path: [r.split !== undefined ? 'split' : 'upstream_override'], message: 'a route with models: chooses its upstream by model; split and upstream_override are for routes without models' })
    return z.NEVER
  }
  if (r.split !== undefined && r.split.reduce((a, e) => a + e.weight, 0) === 0) {
    ctx.addIssue({ code: 'custom', path: ['split'], message: 'the split weights sum to 0: no upstream could ever be chosen' })
    return z.NEVER
  }
  const upstream = r.upstream ?? r.split?.find((e) => e.weight > 0)?.upstream
  if (upstream === undefined) {
    // worded as for any missing key: a route without split needs `upstream` like any required key
    ctx.addIssue({ code: 'custom', path: ['upstream'], message: 'missing required key "upstream"' })
    return z.NEVER
  }
  return { ...r, upstream }
})

/** USD per 1 M tokens (or per request); at most 100 000, which no model costs: a typo, not a price */
const usd = () => amount(100_000)
const priceEntry = z.strictObject({
  input: usd().describe('USD per 1 M prompt tokens not read from a cache'),
  cached_input: usd().optional().describe('USD per 1 M prompt tokens read from a cache; default: input'),
  cache_write: usd().optional().describe('USD per 1 M prompt tokens written to a cache (Anthropic); default: input'),
  output: usd().describe('USD per 1 M completion tokens'),
  reasoning: usd().optional().describe('USD per 1 M reasoning / thinking tokens; default: output'),
  request: usd().optional().describe('USD per request, where a provider charges one; default: 0'),
})
const modelPrices = z.record(z.string().min(1).max(64), priceEntry)
/** per provider, per model (as the metrics name it: lower case, no dated suffix) */
export const pricesSection = z.strictObject({
  openai: modelPrices.optional(),
  gemini: modelPrices.optional(),
  qwen: modelPrices.optional(),
  anthropic: modelPrices.optional(),
})

/** Signature algorithms a `jwt` section may accept; `none` is not among them, so it can never be configured. */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'HS256', 'HS384', 'HS512'] as const

/** One string or a non-empty list of them (issuer, audience): always a list after parsing. */
const textList = () => parsed((v): UnitResult<string[]> => {
  if (typeof v === 'string' && v !== '') return { ok: true, value: [v] }
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x !== '')) return { ok: true, value: v as string[] }
  return { ok: false, message: `expected a string or a list of strings, got ${show(v)}` }
})

const jwt = z.strictObject({
  issuer: textList().describe('accepted `iss` value(s); a token from any other issuer is refused'),
  audience: textList().describe('accepted `aud` value(s): the token must name one of them'),
  jwks_url: parsed((v): UnitResult<string> => {
    if (typeof v === 'string' && URL.canParse(v) && /^https?:$/.test(new URL(v).protocol)) return { ok: true, value: v }
    return { ok: false, message: `expected an http(s) URL of the issuer's JSON Web Key Set, got ${show(v)}` }
  }).optional().describe('the issuer\'s JWKS (set this or keys); fetched at start, cached, refreshed in the background'),
  keys: z.array(secret(parsed(parseJwtKey))).min(1).optional()
    .describe('verification keys written here (set this or jwks_url): a PEM public key or certificate, or a JWK (map or JSON text; kty oct for HS*)'),
  algorithms: z.array(oneOf(JWT_ALGORITHMS)).min(1).default(['RS256', 'ES256', 'EdDSA'])
    .describe('accepted `alg` values; HS* only when listed (a shared secret must never meet a public-key setup by accident)'),
  clock_skew: duration().prefault('30s').describe('tolerance for exp, nbf and iat against this host\'s clock'),
  jwks_refresh: duration().prefault('10m').describe('age after which the JWKS is fetched again (in the background; the old set serves meanwhile)'),
  jwks_cooldown: duration().prefault('30s').describe('least time between two fetches caused by a token with an unknown kid'),
  jwks_timeout: duration().prefault('5s').describe('longest a JWKS fetch may take; a failed fetch keeps the last good set'),
  cache_size: int(0).default(10_000).describe('verified tokens remembered per worker (by SHA-256, until exp); 0 = verify every request'),
  claims: z.strictObject({
    key_id: text().default('sub').describe('claim whose value is the key id (per: key limits, logs); the token is refused without it'),
    org: text().optional().describe('claim naming the organisation (per: org limits); unset or absent: no org'),
    tier: text().optional().describe('claim naming the tier (see tiers); a value that is not a configured tier is refused'),
  }).prefault({}).describe('which claims identify the caller, as a virtual key\'s id, org and tier would'),
}).transform((v, ctx) => {
  if ((v.jwks_url === undefined) === (v.keys === undefined)) {
    ctx.addIssue({ code: 'custom', path: v.keys !== undefined ? ['keys'] : [], message: 'set exactly one of jwks_url or keys' })
    return z.NEVER
  }
  return v
})

export const WEBHOOK_EVENTS = ['budget', 'anomaly'] as const

const webhookEntry = z.strictObject({
  url: parsed((v): UnitResult<string> => {
    if (typeof v === 'string' && URL.canParse(v) && /^https?:$/.test(new URL(v).protocol)) return { ok: true, value: v }
    return { ok: false, message: `expected an http(s) URL, got ${show(v)}` }
  }).describe('where events are POSTed as JSON'),
  events: z.array(oneOf(WEBHOOK_EVENTS)).min(1).default(['budget']).describe('budget: a budget crossed an alert_at share; anomaly: unusual usage'),
  headers: headers.prefault({}).describe('headers sent with every POST (tokens: use ${env:NAME}); names lower-cased'),
  timeout: duration().prefault('5s').describe('one POST\'s deadline'),
  attempts: int(0, 20).default(5).describe('retries after a failed POST (network error, timeout, non-2xx) before the event is dropped'),
  backoff: backoff().prefault('1s..5m').describe('wait between retries: exponential with jitter, "MIN..MAX"'),
  queue: int(1, 100_000).default(1000).describe('events waiting for this webhook; beyond it the oldest is dropped'),
})

const redis = z.strictObject({
  url: secret(z.string().regex(/^rediss?:\/\//, 'expected redis://… or rediss://…')).optional()
    .describe('redis://[user:pass@]host:port[/db]'),
  key_prefix: z.string().default('leaky:').describe('prefix of every key written'),
  timeout: duration().prefault('50ms').describe('per command; past it on_error applies'),
  mode: oneOf(['exact', 'lease']).default('exact')
    .describe('exact: every charge is a Redis call; lease: local buckets lease budget from Redis (no network on the hot path)'),
  on_error: oneOf(['open', 'closed', 'local']).default('local')
    .describe('Redis unreachable: open admits, closed denies, local falls back to this proxy\'s buckets'),
  expected_instances: int(1).default(1).describe('proxies sharing the limits (local fallback divides rates by it)'),
  sentinel: secret(z.record(z.string(), z.unknown())).optional().describe('ioredis sentinel options'),
  cluster: secret(z.record(z.string(), z.unknown())).optional().describe('ioredis cluster options'),
}).transform((v, ctx) => {
  if (v.url === undefined && v.sentinel === undefined && v.cluster === undefined) {
    ctx.addIssue({ code: 'custom', message: 'set url, sentinel or cluster' })
    return z.NEVER
  }
  return v
})

// OpenTelemetry tracing (src/tracing/). Unset keys fall back to the standard OTEL_* environment variables, then to
// the defaults written here; the OTLP exporter reads OTEL_EXPORTER_OTLP_* itself when endpoint/headers are unset.
const ratio = parsed((v): { ok: true; value: number } | { ok: false; message: string } => {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v
  if (typeof n === 'number' && Number.isFinite(n) && n >= 0 && n <= 1) return { ok: true, value: n }
  return { ok: false, message: `expected a ratio from 0 to 1, got ${show(v)}` }
})

const tracing = z.strictObject({
  endpoint: z.string().regex(/^https?:\/\/[^/]/, 'expected http://host:port or https://…').optional()
    .describe('OTLP/HTTP collector: base URL ("http://tempo:4318") or the full traces URL (…/v1/traces); default OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT, then http://localhost:4318'),
  headers: headers.optional().describe('headers sent with every export (API keys: use ${env:NAME}); default OTEL_EXPORTER_OTLP_HEADERS'),
  sample: ratio.optional().describe('share of new traces sampled, 0 to 1; default OTEL_TRACES_SAMPLER_ARG, then 0.01'),
  parent_based: bool().optional()
    .describe('follow the sampled flag of an incoming traceparent; default from OTEL_TRACES_SAMPLER (parentbased_*), then true'),
  sample_denied: bool().default(false).describe('always export requests answered 429 (5xx and upstream failures always are)'),
  service_name: text().optional().describe('service.name of the spans; default OTEL_SERVICE_NAME, then leaky-tokens'),
  timeout: duration().prefault('10s').describe('one export\'s deadline, retries included'),
  max_queue: int(1, 1_000_000).default(2048).describe('spans waiting for export; beyond it new spans are dropped and counted'),
})

const stub = z.strictObject({
  seed: int(0).default(1).describe('seed of the deterministic stub text'),
  ttft: duration().prefault('0ms').describe('time to first token'),
  tokens_per_second: int(0).default(0).describe('streaming pace; 0 = as fast as possible'),
})

export const configSchema = z.strictObject({
  listen: listen().prefault('0.0.0.0:8080').describe('proxy listener "host:port" (":8080" = all IPv4 interfaces)'),
  tls: listenerTls('proxy').optional().describe('terminate TLS on the proxy listener (uWS SSLApp); certificates re-read on reload'),
  listen_plain: listen().optional().describe('a plain-HTTP listener beside the TLS one (health checks, sidecars); same routes'),
  workers: parsed((v) => {
    if (v === 'auto') return { ok: true, value: 'auto' as 'auto' | number }
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v
    if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 64) return { ok: true, value: n }
    return { ok: false, message: `expected "auto" or an integer from 1 to 64, got ${show(v)}` }
  }).prefault('auto').describe('worker threads; auto = os.availableParallelism()'),
  drain_timeout: duration().prefault('30s').describe('on stop or upgrade, how long in-flight requests may finish'),
  state_file: text().optional().describe('bucket snapshot file (written periodically and on stop); unset = memory only'),
  pid_file: text().optional().describe('file the master writes its pid to'),
  limits_table: limitsTable.prefault({}),
  admin: admin.prefault({}),
  audit: audit.prefault({}).describe('audit log: admin API calls, key lifecycle, reloads, upgrades, auth failures'),
  key_store: keyStore.prefault({}).describe('runtime keys (`leaky key create`, /admin/keys), kept in SQLite'),
  ledger: ledger.prefault({}).describe('usage and cost per minute, key, org, model, route and status class, kept in SQLite (`leaky usage`, /admin/usage)'),
  server: server.prefault({}),
  log: log.prefault({}),
  metrics: z.strictObject({
    enabled: bool().default(true).describe('count requests, latencies, tokens and limiter decisions for /metrics and /status'),
  }).prefault({}).describe('Prometheus metrics on the admin listener'),
  watch: bool().default(false).describe('reload the config when this file changes (debounced; same rules as SIGHUP)'),
  limits: z.record(name(), limitEntry).default({})
    .transform((m) => {
      const out: Record<string, { name: string } & z.output<typeof limitEntry>> = {}
      for (const [k, v] of Object.entries(m)) out[k] = { name: k, ...v }
      return out
    })
    .describe('named leaky buckets: the rate is how fast a bucket drains, burst how much it holds'),
  budgets: z.record(name(), budgetEntry).default({})
    .transform((m) => {
      const out: Record<string, { name: string } & z.output<typeof budgetEntry>> = {}
      for (const [k, v] of Object.entries(m)) out[k] = { name: k, ...v }
      return out
    })
    .describe('spend caps in USD per hour, day, week or month (README "Budgets"): a request whose most possible cost does not fit is refused'),
  webhooks: z.array(webhookEntry).default([])
    .describe('JSON POSTs of events (budget alerts), sent from the main thread with retries; never on a request\'s path'),
  tiers: z.record(name(), tierEntry).default({}).describe('key tiers: scale per-key limits'),
  keys: z.array(keyEntry).default([]).describe('virtual keys clients send; provider credentials never leave the proxy'),
  upstreams: z.record(name(), upstreamEntry).default({}).describe('where requests go'),
  routes: z.array(routeEntry).default([]).describe('host + path prefix → upstream, auth and limits'),
  jwt: jwt.optional().describe('how routes with auth: jwt verify bearer tokens (OIDC / JWT issuers)'),
  redis: redis.optional().describe('limits shared by several proxies (scope: cluster)'),
  prices: pricesSection.prefault({})
    .describe('USD per 1 M tokens per provider and model: added to, or replacing entries of, the shipped config/prices.yaml'),
  tracing: tracing.optional().describe('OpenTelemetry spans for every request, exported over OTLP/HTTP (protobuf)'),
  stub: stub.prefault({}).describe('knobs of the embedded stub upstream (targets: [embedded])'),
  cache: cacheSection.prefault({}),
}).transform((c, ctx) => {
  if (c.key_store.shared === 'redis' && c.redis?.url === undefined) {
    ctx.addIssue({ code: 'custom', path: ['key_store', 'shared'], message: 'shared: redis needs redis.url (sentinel and cluster are not supported for keys)' })
    return z.NEVER
  }
  if (c.cache.redis && c.redis?.url === undefined) {
    ctx.addIssue({ code: 'custom', path: ['cache', 'redis'], message: 'redis: true needs redis.url (sentinel and cluster are not supported for the cache)' })
    return z.NEVER
  }
  return c
}).transform((c) => ({
  ...c,
  keys: c.keys.map((k) => ({ ...k, scale: k.tier !== undefined ? (c.tiers[k.tier]?.scale ?? 1) : 1 })),
}))

/** The validated, defaulted and normalised config: durations in ms, sizes in bytes, rates as amount per period. */
export type Config = z.output<typeof configSchema>
export type LimitConfig = Config['limits'][string]
export type BudgetConfig = Config['budgets'][string]
export type KeyConfig = Config['keys'][number]
export type UpstreamConfig = Config['upstreams'][string]
export type RouteConfig = Config['routes'][number]
export type PricesConfig = Config['prices']
export type PriceConfig = z.output<typeof priceEntry>
export type CacheConfig = Config['cache']
export type RouteCacheConfig = NonNullable<RouteConfig['cache']>
export type JwtConfig = NonNullable<Config['jwt']>
