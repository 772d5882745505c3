// The admin listener's API as one OpenAPI 3.1 document, served at GET /admin/openapi.json. Every endpoint the admin
// listener answers is here, with the role it needs (`x-leaky-role`) and the JSON it takes and returns;
// test/admin/openapi.test.ts sends real requests to a running proxy and checks each answer against these schemas.
// A new admin endpoint is added here in the same change.

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
const json = (schema: unknown) => ({ 'application/json': { schema } })
const nullable = (type: string, extra: Record<string, unknown> = {}) => ({ type: [type, 'null'], ...extra })

const err = (description: string) => ({ description, content: json(ref('Error')) })
const E401 = { '401': err('no token, or an unknown one (`LEAKY_UNAUTHORIZED`)') }
const E403 = { '403': err('the token\'s role is too low (`LEAKY_ADMIN_FORBIDDEN`)') }
const E429 = { '429': err('too many failed authentications from this address (`LEAKY_ADMIN_THROTTLED`; Retry-After)') }
const E405 = { '405': err('wrong method (`LEAKY_METHOD_NOT_ALLOWED`; Allow)') }
const guarded = { ...E401, ...E403, ...E405, ...E429 }
const keysOff = { '503': err('runtime keys are disabled (`LEAKY_KEYS_DISABLED`)') }
const bad = { '400': err('invalid JSON (`LEAKY_BAD_JSON`), unknown or invalid field, named in the message (`LEAKY_BAD_REQUEST`)') }

/** what a usage report sums (src/ledger/report.ts) */
const USAGE_SUMS = {
  requests: { type: 'integer' },
  tokens_prompt: { type: 'integer' },
  tokens_completion: { type: 'integer' },
  tokens_cached: { type: 'integer' },
  tokens_thoughts: { type: 'integer' },
  tokens_total: { type: 'integer' },
  cost_usd: { type: 'string', pattern: '^\\d+\\.\\d{6}$', description: 'USD, six places: the sum of the access lines\' cost_usd' },
  unpriced: { type: 'integer', description: 'requests with usage whose model has no price (their cost is not in cost_usd)' },
}
const USAGE_SUMS_REQUIRED = Object.keys(USAGE_SUMS)

const bearer = [{ bearer: [] }, { session: [] }]

export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'leaky-tokens admin API',
    version: '1',
    description: 'The admin listener (admin.listen). Roles: viewer < operator < admin; a token of a higher role may call everything a lower one may. With no admin token configured at all, every endpoint is open (keep the listener on loopback).',
  },
  components: {
    securitySchemes: {
      bearer: { type: 'http', scheme: 'bearer', description: 'an admin.tokens entry or admin.token' },
      session: { type: 'apiKey', in: 'cookie', name: 'leaky_admin', description: 'set by GET /status?token=…' },
    },
    schemas: {
      Error: {
        type: 'object',
        required: ['error'],
        properties: {
          error: {
            type: 'object',
            required: ['message', 'type', 'code'],
            properties: { message: { type: 'string' }, type: { type: 'string' }, code: { type: 'string', pattern: '^LEAKY_[A-Z_]+$' } },
          },
        },
      },
      Live: { type: 'object', required: ['status'], additionalProperties: false, properties: { status: { enum: ['ok', 'down'] } } },
      Ready: {
        type: 'object',
        required: ['status', 'generation', 'workers', 'workers_up', 'upstreams', 'config_version'],
        properties: {
          status: { enum: ['ready', 'not ready'] },
          generation: { type: 'integer' },
          workers: { type: 'integer' },
          workers_up: { type: 'integer' },
          upstreams: { type: 'array', items: { type: 'string' } },
          config_version: { type: 'integer' },
          supervisor: { type: 'object', description: 'the master\'s counters (restarts, crash loop, reloads, upgrades)' },
        },
      },
      SpendPeriod: {
        type: 'object',
        required: ['since', 'total_usd', 'requests', 'by_org', 'by_model'],
        properties: {
          since: { type: 'string' },
          total_usd: { type: 'string', description: 'six decimals, as the access lines' },
          requests: { type: 'integer' },
          by_org: { type: 'array', items: ref('SpendRow') },
          by_model: { type: 'array', items: ref('SpendRow') },
        },
      },
      SpendRow: {
        type: 'object',
        required: ['group', 'requests', 'tokens', 'cost_usd'],
        properties: { group: { type: 'string' }, requests: { type: 'integer' }, tokens: { type: 'integer' }, cost_usd: { type: 'string' } },
      },
      StatusJson: {
        type: 'object',
        description: 'what the status page draws; more fields may be added',
        required: ['version', 'generation', 'config_version', 'workers', 'uptime_s', 'metrics', 'inflight', 'series'],
        properties: {
          version: { type: 'string' },
          generation: { type: 'integer' },
          config_version: { type: 'integer' },
          workers: { type: 'integer' },
          uptime_s: { type: 'integer' },
          metrics: { type: 'boolean' },
          inflight: { type: 'integer' },
          series: {
            type: 'object',
            required: ['t', 'rps', 'p50_ms', 'p99_ms', 'limited_ps'],
            properties: {
              t: { type: 'array', items: { type: 'number' } },
              rps: { type: 'array', items: nullable('number') },
              p50_ms: { type: 'array', items: nullable('number') },
              p99_ms: { type: 'array', items: nullable('number') },
              limited_ps: { type: 'array', items: nullable('number') },
            },
          },
          table: { type: ['object', 'null'] },
          targets: {
            type: 'array',
            description: 'every upstream target: state (up, ejected, unhealthy), in flight, ejections, latency EWMA, last health check',
            items: {
              type: 'object',
              required: ['upstream', 'target', 'weight', 'state', 'inflight', 'ejected_until', 'ejections', 'latency_ewma_ms', 'health_check'],
              properties: {
                upstream: { type: 'string' },
                target: { type: 'string' },
                weight: { type: 'number' },
                state: { enum: ['up', 'ejected', 'unhealthy'] },
                inflight: { type: 'integer' },
                ejected_until: nullable('string'),
                ejections: { type: 'integer' },
                latency_ewma_ms: nullable('number'),
                health_check: nullable('string'),
              },
            },
          },
          spend: {
            type: 'object',
            description: 'the spend panel: today and this month (UTC) by org and by model from the usage ledger (as of its last flush; null without a ledger), and every budget with its subjects\' spend',
            required: ['ledger', 'today', 'month', 'budgets'],
            properties: {
              ledger: { type: 'boolean' },
              today: { oneOf: [{ type: 'null' }, ref('SpendPeriod')] },
              month: { oneOf: [{ type: 'null' }, ref('SpendPeriod')] },
              budgets: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['budget', 'per', 'limit_usd', 'resets_at', 'cluster', 'spent'],
                  properties: {
                    budget: { type: 'string' },
                    per: { type: 'string' },
                    limit_usd: { type: 'number' },
                    resets_at: nullable('string'),
                    cluster: { type: 'boolean', description: 'a cluster budget\'s spend is its Redis key: not listed' },
                    spent: { type: 'array', items: { type: 'object', required: ['subject', 'usd'], properties: { subject: { type: 'string' }, usd: { type: 'number' } } } },
                  },
                },
              },
            },
          },
          providers: {
            type: 'array',
            description: 'each upstream\'s provider account as its rate-limit headers report it',
            items: {
              type: 'object',
              required: ['upstream', 'remaining_requests', 'remaining_tokens', 'exhausted_until', 'refused', 'malformed', 'inflight', 'shed', 'retry_budget_denied', 'concurrency_limit', 'queued', 'limit_requests', 'limit_tokens'],
              properties: {
                upstream: { type: 'string' },
                remaining_requests: nullable('number'),
                remaining_tokens: nullable('number'),
                exhausted_until: nullable('string'),
                refused: { type: 'integer' },
                malformed: { type: 'integer' },
                inflight: { type: 'integer' },
                shed: { type: 'integer' },
                retry_budget_denied: { type: 'integer' },
                concurrency_limit: nullable('integer'),
                queued: { type: 'integer' },
                limit_requests: nullable('number'),
                limit_tokens: nullable('number'),
              },
            },
          },
        },
      },
      PurgeRequest: {
        type: 'object',
        additionalProperties: false,
        properties: {
          route: { type: 'string', description: 'a route path prefix as configured (e.g. /v1/): only its entries' },
          scope: { type: 'string', description: '"key:ID", "org:NAME", "ip:ADDR" or "" (scope: global entries): only those' },
        },
      },
      PurgeResult: {
        type: 'object',
        required: ['purged', 'entries', 'bytes'],
        properties: {
          purged: { type: 'integer', description: 'entries removed from this proxy' },
          entries: { type: 'integer', description: 'entries left' },
          bytes: { type: 'integer', description: 'bytes left' },
          redis_purged: { type: 'integer', description: 'with cache.redis: entries removed from the Redis tier (every proxy\'s)' },
        },
      },
      ReloadResult: {
        type: 'object',
        required: ['ok', 'errors', 'applied', 'needs_upgrade', 'needs_restart', 'config_version', 'generation'],
        properties: {
          ok: { type: 'boolean' },
          errors: { type: 'array', items: { type: 'string' }, description: 'config errors as file:line:col path: message' },
          applied: { type: 'array', items: { type: 'string' } },
          needs_upgrade: { type: 'array', items: { type: 'string' } },
          needs_restart: { type: 'array', items: { type: 'string' } },
          config_version: { type: 'integer' },
          generation: nullable('integer'),
          error: { type: 'object', description: 'on 422: LEAKY_RELOAD_FAILED' },
        },
      },
      UsageSums: { type: 'object', required: USAGE_SUMS_REQUIRED, properties: USAGE_SUMS },
      UsageRow: {
        type: 'object',
        required: ['group', ...USAGE_SUMS_REQUIRED],
        additionalProperties: false,
        properties: {
          group: { type: 'string', description: 'the key id, org, model, route, status class (2xx), day (YYYY-MM-DD) or month (YYYY-MM); "" = none' },
          ...USAGE_SUMS,
        },
      },
      UsageReport: {
        type: 'object',
        required: ['by', 'since', 'until', 'granularity', 'rows', 'total'],
        additionalProperties: false,
        properties: {
          by: { enum: ['key', 'org', 'model', 'route', 'status', 'day', 'month'] },
          since: { type: 'string', format: 'date-time', description: 'the range really covered: widened to whole minutes, or whole UTC days for day rows' },
          until: { type: 'string', format: 'date-time' },
          granularity: { enum: ['minute', 'day'], description: 'minute rows when since is within ledger.retention.minutes, else day rows' },
          rows: { type: 'array', items: ref('UsageRow') },
          total: ref('UsageSums'),
        },
      },
      DrainResult: {
        type: 'object',
        required: ['ok', 'drain_timeout_ms'],
        properties: { ok: { const: true }, drain_timeout_ms: { type: 'integer' } },
      },
      Key: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'source', 'read_only', 'state', 'org', 'tier', 'created_at', 'expires_at', 'revoked_at', 'rotated_at', 'grace_until', 'models', 'routes'],
        properties: {
          id: { type: 'string' },
          source: { enum: ['config', 'runtime'], description: 'config: from the YAML keys list, read-only' },
          read_only: { type: 'boolean' },
          state: { enum: ['active', 'expired', 'revoked'] },
          org: { type: 'string' },
          tier: { type: 'string' },
          created_at: nullable('string', { format: 'date-time' }),
          expires_at: nullable('string', { format: 'date-time' }),
          revoked_at: nullable('string', { format: 'date-time' }),
          rotated_at: nullable('string', { format: 'date-time' }),
          grace_until: nullable('string', { format: 'date-time', description: 'the previous secret is accepted until then' }),
          models: { type: ['array', 'null'], items: { type: 'string' } },
          routes: { type: ['array', 'null'], items: { type: 'string' } },
        },
      },
      KeyList: {
        type: 'object',
        additionalProperties: false,
        required: ['enabled', 'disabled_reason', 'keys'],
        properties: { enabled: { type: 'boolean' }, disabled_reason: nullable('string'), keys: { type: 'array', items: ref('Key') } },
      },
      KeyCreate: {
        type: 'object',
        additionalProperties: false,
        required: ['id'],
        properties: {
          id: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
          org: { type: 'string' },
          tier: { type: 'string', description: 'a tier of the config' },
          expires: { type: 'string', description: 'lifetime, e.g. "30d", "12h"' },
          models: { type: 'array', items: { type: 'string' }, minItems: 1, description: 'allowed models (403 LEAKY_KEY_FORBIDDEN otherwise)' },
          routes: { type: 'array', items: { type: 'string', pattern: '^/' }, minItems: 1, description: 'allowed path prefixes' },
        },
      },
      KeyRotate: {
        type: 'object',
        additionalProperties: false,
        properties: { grace: { type: 'string', description: 'how long the old secret stays valid, e.g. "1h" (default 0)' } },
      },
      KeyWithSecret: {
        type: 'object',
        additionalProperties: false,
        required: ['key', 'secret'],
        properties: { key: ref('Key'), secret: { type: 'string', description: 'shown once; only its sha256 is stored' } },
      },
      KeyOnly: { type: 'object', additionalProperties: false, required: ['key'], properties: { key: ref('Key') } },
    },
  },
  paths: {
    '/live': {
      get: { summary: 'liveness', security: [], 'x-leaky-role': 'open', responses: { '200': { description: 'alive', content: json(ref('Live')) }, ...E405 } },
    },
    '/ready': {
      get: {
        summary: 'readiness: every worker listens and the generation is not draining',
        security: [],
        'x-leaky-role': 'open',
        responses: { '200': { description: 'ready', content: json(ref('Ready')) }, '503': { description: 'not ready', content: json(ref('Ready')) }, ...E405 },
      },
    },
    '/admin/openapi.json': {
      get: { summary: 'this document', security: [], 'x-leaky-role': 'open', responses: { '200': { description: 'OpenAPI 3.1', content: json({ type: 'object', required: ['openapi', 'paths'] }) } } },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus metrics (open while admin.metrics_public)',
        security: bearer,
        'x-leaky-role': 'viewer',
        responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } }, ...guarded },
      },
    },
    '/status': {
      get: {
        summary: 'the status page (HTML); ?token=… answers 303 with a session cookie',
        security: bearer,
        'x-leaky-role': 'viewer',
        parameters: [{ name: 'token', in: 'query', required: false, schema: { type: 'string' } }],
        responses: {
          '200': { description: 'the page', content: { 'text/html': { schema: { type: 'string' } } } },
          '303': { description: 'signed in: Set-Cookie leaky_admin, Location /status' },
          ...guarded,
        },
      },
    },
    '/status.json': {
      get: { summary: 'what the status page draws', security: bearer, 'x-leaky-role': 'viewer', responses: { '200': { description: 'status', content: json(ref('StatusJson')) }, ...guarded } },
    },
    '/admin/usage': {
      get: {
        summary: 'usage and cost from the ledger over a time range, grouped by one dimension (as `leaky usage`)',
        security: bearer,
        'x-leaky-role': 'viewer',
        parameters: [
          { name: 'by', in: 'query', schema: { enum: ['key', 'org', 'model', 'route', 'status', 'day', 'month'], default: 'key' } },
          { name: 'since', in: 'query', schema: { type: 'string', default: '7d' }, description: 'a duration back from now (7d, 12h), a date (2026-12-01, UTC) or an ISO date-time' },
          { name: 'until', in: 'query', schema: { type: 'string' }, description: 'end, exclusive, same forms; default now' },
        ],
        responses: {
          '200': { description: 'the report', content: json(ref('UsageReport')) },
          '400': err('an unknown parameter, or a bad by, since or until, named in the message (`LEAKY_BAD_REQUEST`)'),
          ...guarded,
          '503': err('the usage ledger is off: not configured, or its file could not be opened (`LEAKY_LEDGER_DISABLED`)'),
        },
      },
    },
    '/admin/reload': {
      post: {
        summary: 'reload the config file in place (as SIGHUP / leaky reload)',
        security: bearer,
        'x-leaky-role': 'operator',
        responses: {
          '200': { description: 'reloaded', content: json(ref('ReloadResult')) },
          '422': { description: 'the config is invalid; the running one stays (LEAKY_RELOAD_FAILED)', content: json(ref('ReloadResult')) },
          ...guarded,
        },
      },
    },
    '/admin/drain': {
      post: {
        summary: 'graceful stop: every generation drains (up to drain_timeout) and the service exits (as leaky stop)',
        security: bearer,
        'x-leaky-role': 'operator',
        responses: { '202': { description: 'draining', content: json(ref('DrainResult')) }, ...guarded },
      },
    },
    '/admin/cache/purge': {
      post: {
        summary: 'empty the response cache: all of it, one route\'s entries, one scope\'s, or both filters together',
        security: bearer,
        'x-leaky-role': 'admin',
        requestBody: { required: false, content: json(ref('PurgeRequest')) },
        responses: {
          '200': { description: 'purged', content: json(ref('PurgeResult')) },
          ...bad,
          '413': err('body over 64 KB (`LEAKY_BODY_TOO_LARGE`)'),
          '503': err('with cache.redis: purged on this proxy but Redis did not answer (`LEAKY_REDIS_UNAVAILABLE`); repeat it'),
          ...guarded,
        },
      },
    },
    '/admin/keys': {
      get: {
        summary: 'every key: the config file\'s (read-only) and the runtime ones; never a secret or hash',
        security: bearer,
        'x-leaky-role': 'admin',
        responses: { '200': { description: 'keys', content: json(ref('KeyList')) }, ...guarded },
      },
      post: {
        summary: 'create a runtime key; the secret is in this answer only',
        security: bearer,
        'x-leaky-role': 'admin',
        requestBody: { required: true, content: json(ref('KeyCreate')) },
        responses: {
          '201': { description: 'created', content: json(ref('KeyWithSecret')) },
          ...bad,
          '409': err('the id exists (`LEAKY_KEY_EXISTS`), also in the config file or as a revoked key'),
          ...guarded,
          ...keysOff,
        },
      },
    },
    '/admin/keys/{id}': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      delete: {
        summary: 'revoke a runtime key (refused by every worker within a second; the row stays for the record)',
        security: bearer,
        'x-leaky-role': 'admin',
        responses: {
          '200': { description: 'revoked', content: json(ref('KeyOnly')) },
          '404': err('no such runtime key (`LEAKY_KEY_NOT_FOUND`)'),
          '409': err('a config-file key (`LEAKY_KEY_READ_ONLY`)'),
          ...guarded,
          ...keysOff,
        },
      },
    },
    '/admin/keys/{id}/rotate': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      post: {
        summary: 'new secret for a key; the old one stays valid for the grace period',
        security: bearer,
        'x-leaky-role': 'admin',
        requestBody: { required: false, content: json(ref('KeyRotate')) },
        responses: {
          '200': { description: 'rotated', content: json(ref('KeyWithSecret')) },
          ...bad,
          '404': err('no such runtime key (`LEAKY_KEY_NOT_FOUND`)'),
          '409': err('a config-file key (`LEAKY_KEY_READ_ONLY`) or a revoked one (`LEAKY_KEY_EXISTS`)'),
          ...guarded,
          ...keysOff,
        },
      },
    },
  },
} as const
