// The config schema: the one place a key, its default, its unit and its meaning are written. Types come from it
// (z.output), unknown keys are errors (strictObject), and secrets are marked with `secret()` so redaction is one
// generic walk. `.describe()` is the doc: the user-facing reference is generated from it.
//
// Defaults that go through a parser (durations, sizes, nested sections) use `.prefault`, which feeds the default
// through the schema as if the user had written it; `.default` is only for values already in output form.
import { createHash } from 'node:crypto'
import * as z from 'zod'
import {
  backoff, bool, cidr, count, duration, HEADER_NAME_RE, hostname, int, listen, name, num, oneOf, parsed, rate, secret,
  show, size, target, text,
} from './fields.js'

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

const admin = z.strictObject({
  listen: listen().prefault('127.0.0.1:9090').describe('admin listener: /live /ready /metrics /status'),
  token: secret(text()).optional().describe('bearer token for the admin endpoints; unset = no auth (keep listen local)'),
  metrics_public: bool().default(true).describe('serve /metrics without the token'),
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

const limitEntry = z.strictObject({
  per: oneOf(LIMIT_SUBJECTS).describe('what a bucket belongs to: one bucket per key, org, route, upstream, client ip, or one global'),
  requests: rate().optional().describe('request rate, e.g. "600/min" (set this or tokens)'),
  tokens: rate().optional().describe('token rate (prompt + completion), e.g. "100k/min" (set this or requests)'),
  burst: count(1).optional()
    .describe('bucket size; default: tokens → one period\'s amount, requests → one second\'s worth (at least 1)'),
  scope: oneOf(['local', 'cluster']).default('local').describe('local: this proxy\'s buckets; cluster: shared through redis'),
  on_error: oneOf(['open', 'closed', 'local']).optional()
    .describe('scope: cluster only — when Redis fails: open admits, closed denies (503), local uses this proxy\'s share; default redis.on_error'),
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
  const out = { per: v.per, unit, amount: r.amount, period_ms: r.period_ms, burst, scope: v.scope }
  return v.on_error === undefined ? out : { ...out, on_error: v.on_error }
})

const tierEntry = z.strictObject({
  scale: num(0).describe('multiplies rate and burst of per-key limits for keys in this tier (> 0)'),
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

const upstreamEntry = z.strictObject({
  provider: oneOf(PROVIDERS).default('none')
    .describe('API shape, for reading token usage and error bodies: openai (also Azure OpenAI and OpenAI-compatible servers) | gemini | qwen | anthropic | none (plain HTTP)'),
  targets: z.array(target()).min(1)
    .describe('"http(s)://host[:port][/base/path]" or "embedded" (the built-in stub); round-robin'),
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
  }).optional(),
  breaker: z.strictObject({
    failure_ratio: num(0, 1).default(0.5).describe('failed share of requests in the window that opens the breaker'),
    min_requests: int(1).default(20).describe('requests in the window before the ratio counts'),
    window: duration().prefault('10s').describe('sliding window the ratio is measured over'),
    cooldown: duration().prefault('15s').describe('open time before one trial request is let through'),
  }).optional(),
  fallback: name().optional().describe('upstream tried when this one fails or its breaker is open'),
  default_max_tokens: int(1).default(1024).describe('output tokens assumed when the client sets no max (for the estimate)'),
})

const routeEntry = z.strictObject({
  path: z.string().startsWith('/', 'must start with "/"').describe('path prefix; the longest matching prefix wins'),
  host: hostname().optional().describe('match only this Host (port ignored); routes without host match any'),
  upstream: text().describe('upstream name'),
  strip_prefix: bool().default(false).describe('remove the path prefix before forwarding'),
  auth: oneOf(['key', 'none', 'jwt']).default('none').transform((v, ctx) => {
    if (v === 'jwt') {
      ctx.addIssue({ code: 'custom', message: 'jwt is not supported yet' })
      return z.NEVER
    }
    return v
  }).describe('key: a virtual key is required (401 without); none: anonymous (limits per ip/route/upstream/global)'),
  limits: z.array(text()).default([]).describe('limit names charged for every request on this route (all or nothing)'),
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
  tiers: z.record(name(), tierEntry).default({}).describe('key tiers: scale per-key limits'),
  keys: z.array(keyEntry).default([]).describe('virtual keys clients send; provider credentials never leave the proxy'),
  upstreams: z.record(name(), upstreamEntry).default({}).describe('where requests go'),
  routes: z.array(routeEntry).default([]).describe('host + path prefix → upstream, auth and limits'),
  redis: redis.optional().describe('limits shared by several proxies (scope: cluster)'),
  tracing: tracing.optional().describe('OpenTelemetry spans for every request, exported over OTLP/HTTP (protobuf)'),
  stub: stub.prefault({}).describe('knobs of the embedded stub upstream (targets: [embedded])'),
}).transform((c) => ({
  ...c,
  keys: c.keys.map((k) => ({ ...k, scale: k.tier !== undefined ? (c.tiers[k.tier]?.scale ?? 1) : 1 })),
}))

/** The validated, defaulted and normalised config: durations in ms, sizes in bytes, rates as amount per period. */
export type Config = z.output<typeof configSchema>
export type LimitConfig = Config['limits'][string]
export type KeyConfig = Config['keys'][number]
export type UpstreamConfig = Config['upstreams'][string]
export type RouteConfig = Config['routes'][number]
