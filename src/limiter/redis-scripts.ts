// The Lua side of the Redis backend: GCRA over several buckets in one script call, so one round trip decides every
// cluster limit of a request, all or nothing, atomically (Redis runs a script alone). Time is Redis `TIME`, never the
// proxy's clock, so clock skew between proxies cannot shift anyone's buckets.
//
// Units. Redis's Lua has only doubles: ns since the epoch (~1.8e18) is beyond 2^53, so a bucket's TAT is stored as
// microseconds since the epoch (~1.8e15, an exact integer part with 0.25 µs resolution) written with %.17g, which
// round-trips a double exactly. T arrives in µs with its fraction (3333.333 for 300/s): the per-charge rounding is at
// most 0.125 µs, i.e. < 0.01% of T for any rate below ~100k units/s per bucket. Comparisons allow EPS_US so that
// `burst` charges of T made at one instant fill the bucket exactly despite that rounding.
//
// A bucket key lives only while its bucket holds something: every write sets PX to the drain time (+1 ms), a refund
// that empties the bucket deletes it. An absent key is an empty bucket.
//
// Reply of DECIDE: { status, decider, retry_ns, time_s, time_us, drain_ns_1 .. drain_ns_n }
//   status     0 OK (all charged), 1 DENIED, 2 OVER_BURST (the same codes as Status in table.ts)
//   decider    1-based index of the deciding charge (DENIED: the longest wait), 0 when OK
//   drain_ns_i ns from `time` until bucket i is empty: after the charge when OK, as it stands when not
// Numbers go back as integers (Redis truncates Lua numbers): drain times are bounded by tau (<= 100 years < 2^53 ns
// only up to 104 days; longer tau loses sub-µs digits of the drain time, which no header shows).

/** ARGV per charge in DECIDE and ADJUST: T in µs, burst (units), cost or delta (units). */
export const ARGS_PER_CHARGE = 3

export const DECIDE_LUA = `
local EPS_US = 0.5
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local n = #KEYS
local tats = {}
local incs = {}
local status = 0
local decider = 0
local wait = 0
for i = 1, n do
  local t = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  tats[i] = tat
  incs[i] = cost * t
  if cost > burst then
    if status ~= 2 then status = 2 decider = i end
  elseif status ~= 2 then
    local w = tat + incs[i] - now - burst * t
    if w > EPS_US then
      if status == 0 or w > wait then wait = w decider = i end
      status = 1
    end
  end
end
local out = { status, decider, math.floor(wait * 1000), tm[1], tm[2] }
if status == 0 then
  for i = 1, n do
    local next = tats[i] + incs[i]
    local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
    -- the same key twice in one request: charge on top of the first charge
    if cur > tats[i] then next = cur + incs[i] end
    if next > now then
      redis.call('SET', KEYS[i], string.format('%.17g', next), 'PX', math.ceil((next - now) / 1000) + 1)
    end
    out[5 + i] = math.floor((next - now) * 1000)
  end
else
  for i = 1, n do out[5 + i] = math.floor((tats[i] - now) * 1000) end
end
return out
`

// ADJUST: reconcile usage that already happened. delta > 0 charges unconditionally (the bucket may go past its burst;
// later requests pay the debt), delta < 0 refunds but never below an empty bucket (gcra.ts, refund rule). Reply:
// { time_s, time_us, drain_ns_1 .. drain_ns_n }.
export const ADJUST_LUA = `
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local out = { tm[1], tm[2] }
for i = 1, #KEYS do
  local t = tonumber(ARGV[3 * i - 2])
  local delta = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  local next
  if delta >= 0 then
    if tat < now then tat = now end
    next = tat + delta * t
  else
    next = tat + delta * t
  end
  if next > now then
    redis.call('SET', KEYS[i], string.format('%.17g', next), 'PX', math.ceil((next - now) / 1000) + 1)
    out[2 + i] = math.floor((next - now) * 1000)
  else
    redis.call('DEL', KEYS[i])
    out[2 + i] = 0
  end
end
return out
`

// LEASE: take up to `want` units from one bucket for a proxy's local budget: as many as conform now (>= 0), charged
// like a request of that cost. ARGV: T µs, burst, want. Reply: { granted, time_s, time_us, drain_ns }.
// RETURN (a negative ADJUST) gives unused units back on shutdown.
export const LEASE_LUA = `
local EPS_US = 0.5
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local room = math.floor((burst * t - (tat - now) + EPS_US) / t)
local granted = want
if room < granted then granted = room end
if granted < 0 then granted = 0 end
local next = tat + granted * t
if granted > 0 then
  redis.call('SET', KEYS[1], string.format('%.17g', next), 'PX', math.ceil((next - now) / 1000) + 1)
end
return { granted, tm[1], tm[2], math.floor((next - now) * 1000) }
`
