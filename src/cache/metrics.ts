// The cache's metrics. Its counters live on the main thread with the owner (every lookup passes through it), so they
// are read at scrape time like the operations counters — no shared buffer, nothing counted on the workers.
import { Counter, Gauge, type Registry } from 'prom-client'
import type { CacheOwner } from './owner.js'

export function registerCacheMetrics(registry: Registry, owner: () => CacheOwner | null): void {
  const registers = [registry]
  const counter = (name: string, help: string, get: (o: CacheOwner) => number) =>
    new Counter({ name, help, registers, collect(this: Counter) {
      this.reset()
      const o = owner()
      if (o !== null) this.inc(get(o))
    } })
  counter('leaky_cache_hits_total', 'Answers served from the response cache (fresh or stale).', (o) => o.counters.hits + o.counters.stale)
  counter('leaky_cache_stale_total', 'Answers served stale (stale_while_revalidate) while one request refreshed them.', (o) => o.counters.stale)
  counter('leaky_cache_misses_total', 'Lookups that went upstream (each leads one upstream call).', (o) => o.counters.misses)
  counter('leaky_cache_coalesced_total', 'Requests that waited for an identical request in flight and got its answer.', (o) => o.counters.coalesced)
  counter('leaky_cache_evictions_total', 'Entries evicted to keep the cache within cache.memory.', (o) => o.store.evictions)
  counter('leaky_cache_tokens_saved_total', 'Tokens of the answers served from the cache or coalesced instead of asked again.', (o) => o.counters.tokensSaved)
  counter('leaky_cache_cost_saved_usd_total', 'USD the answers served from the cache or coalesced would have cost asked again (priced models only).', (o) => o.counters.costSavedPico / 1e12)
  const remote = (name: string, help: string, get: (r: NonNullable<CacheOwner['redis']>) => number) =>
    counter(name, help, (o) => (o.redis === null ? 0 : get(o.redis)))
  remote('leaky_cache_redis_hits_total', 'Local misses answered from the Redis tier (cache.redis) instead of the upstream.', (r) => r.counters.hits)
  remote('leaky_cache_redis_misses_total', 'Local misses not found in the Redis tier either.', (r) => r.counters.misses)
  remote('leaky_cache_redis_errors_total', 'Redis tier lookups and writes that failed or timed out, and values that did not decode (each a miss).', (r) => r.counters.errors)
  new Gauge({ name: 'leaky_cache_bytes', help: 'Bytes held by the response cache (bounded by cache.memory).', registers, collect(this: Gauge) {
    this.set(owner()?.store.bytes ?? 0)
  } })
  new Gauge({ name: 'leaky_cache_entries', help: 'Entries held by the response cache.', registers, collect(this: Gauge) {
    this.set(owner()?.store.size ?? 0)
  } })
  new Gauge({ name: 'leaky_cache_flights', help: 'Upstream calls of cached routes in flight (each with its waiting followers).', registers, collect(this: Gauge) {
    this.set(owner()?.flights.size ?? 0)
  } })
}
