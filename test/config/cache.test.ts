// The cache settings: YAML in → defaults out, or every issue as `file:line:col path: message`.
import t from 'tap'
import { parseConfig, formatIssue, type Config } from '../../src/config/index.js'

function load(yaml: string): Config | string[] {
  const r = parseConfig(yaml, 'c.yaml', {})
  return r.ok ? r.config : r.issues.map(formatIssue)
}

const UP = 'upstreams:\n  llm: { provider: openai, targets: [embedded] }\n'

t.test('defaults: the section and a route\'s cache', async (t) => {
  const c = load(`${UP}routes:\n  - { path: /v1/, upstream: llm, cache: {} }\n`) as Config
  t.same(c.cache, { memory: 256 * 1024 * 1024, charge_tokens: false, ignore: ['user', 'stream_options', 'metadata'], xfetch_beta: 1, wait: 60_000, redis: false })
  t.same(c.routes[0].cache, {
    ttl: 3_600_000, max_entry: 1024 * 1024, scope: 'key', methods: ['POST'], when: 'deterministic', replay_pace: 'unpaced', stale_while_revalidate: 0,
  })
  const none = load(`${UP}routes:\n  - { path: /v1/, upstream: llm }\n`) as Config
  t.equal(none.routes[0].cache, undefined, 'no cache unless the route asks')
})

const bad: Array<[string, string, string[]]> = [
  ['unknown key in the section', `cache: { memroy: 1mb }\n`, ['c.yaml:1:10 cache.memroy: unknown key "memroy" (did you mean "memory"?)']],
  ['a scope that does not exist', `${UP}routes:\n  - { path: /v1/, upstream: llm, cache: { scope: tenant } }\n`,
    ['c.yaml:4:50 routes[0].cache.scope: expected one of key, org, global, got "tenant"']],
  ['a method the cache does not take', `${UP}routes:\n  - { path: /v1/, upstream: llm, cache: { methods: [PUT] } }\n`,
    ['c.yaml:4:53 routes[0].cache.methods[0]: expected one of GET, POST, got "PUT"']],
  ['a size without unit', `cache: { memory: 1000 }\n`, []],
  ['a negative xfetch_beta', `cache: { xfetch_beta: -1 }\n`, []],
  ['the Redis tier without a Redis', `cache: { redis: true }\n`, ['c.yaml:1:17 cache.redis: redis: true needs redis.url (sentinel and cluster are not supported for the cache)']],
]

for (const [name, yaml, want] of bad) {
  t.test(`rejected: ${name}`, async (t) => {
    const r = load(yaml)
    t.ok(Array.isArray(r), 'rejected')
    if (!Array.isArray(r)) return
    t.ok(r.length > 0)
    for (const line of r) t.match(line, /^c\.yaml:\d+:\d+ /, 'with file:line:col')
    if (want.length > 0) t.same(r, want)
  })
}
