// Cluster budgets: one counter per (budget, window, subject) in Redis, charged by every proxy on the same Redis, so a
// budget is exact across proxies. A calendar window is a plain counter — no drain — so the Redis side is an
// INCRBY guarded by a check, all budgets of a request in one script call (all or nothing, atomic as every script).
// The window is the proxy's (its clock and zone rules): its start is part of the key, so a new window is a new key,
// and each key expires a day after its window ends (TTL relative to the proxy's clock, so a test clock works too).
//
// Keys share one hash tag, so a request's budgets are in one Redis Cluster slot (no CROSSSLOT); a key_prefix with
// its own hash tag wins, which keeps budgets in the limits' slot.
import type { Budget } from './budgets.js'

/**
 * CHARGE. KEYS: counters; ARGV per key: limit (units), cost (units), ttl (ms). Reply: { status, decider, level_1 ..
 * level_n } — status 0 charged (levels after), 1 DENIED (levels as they stand), 2 OVER_BURST; decider 1-based.
 */
export const BUDGET_CHARGE_LUA = `
local n = #KEYS
local levels = {}
local status = 0
local decider = 0
for i = 1, n do
  local limit = tonumber(ARGV[3 * i - 2])
  local cost = tonumber(ARGV[3 * i - 1])
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  levels[i] = cur
  if cost > limit then
    if status ~= 2 then status = 2 decider = i end
  elseif status == 0 and cur + cost > limit then
    status = 1 decider = i
  end
end
if status == 0 then
  for i = 1, n do
    local cost = tonumber(ARGV[3 * i - 1])
    if cost > 0 then
      levels[i] = redis.call('INCRBY', KEYS[i], cost)
      redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[3 * i]))
    end
  end
end
local out = { status, decider }
for i = 1, n do out[2 + i] = levels[i] end
return out
`

/**
 * ADJUST. KEYS: counters; ARGV per key: delta (units), ttl (ms). A refund never takes a counter below 0. Reply: the
 * levels after.
 */
export const BUDGET_ADJUST_LUA = `
local out = {}
for i = 1, #KEYS do
  local delta = tonumber(ARGV[2 * i - 1])
  local v = tonumber(redis.call('GET', KEYS[i]) or '0') + delta
  if v < 0 then v = 0 end
  redis.call('SET', KEYS[i], string.format('%d', v), 'PX', tonumber(ARGV[2 * i]))
  out[i] = v
end
return out
`

const DAY_MS = 86_400_000

/** The counter of `b`'s window holding `nowNs` for `scope`. */
export function budgetKey(prefix: string, b: Budget, scope: string, nowNs: bigint): string {
  const start = b.limit.calendar!.startNs(nowNs) / 1_000_000n
  return `${prefix}budget:{b}:${b.name}:${start}:${scope}`
}

/** ms the counter must outlive `nowNs`: to its window's end, plus a day (a late reconcile still finds it). */
export function budgetTtlMs(b: Budget, nowNs: bigint): number {
  return Number((b.limit.calendar!.endNs(nowNs) - nowNs) / 1_000_000n) + DAY_MS
}
