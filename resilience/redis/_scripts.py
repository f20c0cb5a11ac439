"""The Lua scripts the Redis policies run, one decision (or one batch) per round trip.

Each runs with EVALSHA and is loaded (SCRIPT LOAD) only when the server
answers NOSCRIPT: on first use, and after a restart or SCRIPT FLUSH (see
``RedisStore.run_sync``). Time is the server's ``TIME``, in
microseconds, never a client's clock; every key written gets a TTL; every
key a script touches is named in ``KEYS`` and shares one hash slot.
Replies are integers (Lua numbers become integers in replies, so durations
travel as whole microseconds, rounded up).
"""

from __future__ import annotations

__all__ = ["GCRA", "GCRA_FIELDS"]

# GCRA, the generic cell rate algorithm: a token bucket kept as one number,
# the theoretical arrival time (TAT) — when the bucket would be full again.
# With T microseconds per token and a capacity of ``burst`` tokens (tau = T *
# burst), the bucket holds (tau - (TAT - now)) / T tokens at ``now``.
#
# KEYS[1]  the TAT (a float as a string; absent = a full bucket)
# ARGV[1]  T, microseconds per token
# ARGV[2]  burst, the capacity in tokens
# ARGV[3], ARGV[4], ...  requests, decided in order: triples (least, most,
#   max_wait). An exact request asks least = most = n tokens. A lease asks
#   for up to ``most``, at least ``least``: it gets min(most, the whole
#   tokens there) if that is >= least. ``max_wait``: the longest wait, in
#   microseconds, the grant may reserve (0: take it now or refuse); a
#   reservation moves the TAT past now + tau, so later requests queue
#   behind it, in the order they reach the server.
#
# Reply: GCRA_FIELDS integers per request — allowed (1/0); the tokens
# granted, rounded down (what a lease spends); the whole tokens remaining;
# microseconds: when allowed, the wait before the grant may be used (a
# reservation, <= its max_wait), else until the least could be granted (-1: never,
# it is more than the burst); microseconds until the bucket is full.
#
# SLACK: the TAT is near 1.7e15 us, where a double's rounding is 0.25 us;
# sums of fractional T may land a few roundings past tau. One microsecond —
# the server clock's own resolution — absorbs that, so a bucket of n
# tokens grants n, not n - 1.
GCRA = """
local T = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local SLACK = 1
local tau = T * burst
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
if tat == nil or tat < now then tat = now end
local start = tat
local out = {}
for i = 3, #ARGV, 3 do
  local least = tonumber(ARGV[i])
  local most = tonumber(ARGV[i + 1])
  local max_wait = tonumber(ARGV[i + 2])
  local room = tau - (tat - now) + SLACK  -- in microseconds of tokens
  local grant = least
  if room >= most * T then
    grant = most
  elseif room >= least * T then
    grant = math.max(least, math.floor(room / T))
  end
  local allowed = 0
  local wait = -1
  if least <= burst then
    local after = tat + grant * T
    wait = after - now - tau
    if wait <= max_wait + SLACK then
      allowed = 1
      tat = after
      if wait < 0 then wait = 0 end
    end
  end
  local remaining = math.floor((tau - (tat - now) + SLACK) / T)
  if remaining < 0 then remaining = 0 end
  if wait > 0 then wait = math.ceil(wait) end
  out[#out + 1] = allowed
  out[#out + 1] = allowed * math.floor(grant)
  out[#out + 1] = remaining
  out[#out + 1] = wait
  out[#out + 1] = math.ceil(tat - now)
end
if tat > start then
  redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX',
             math.max(1, math.ceil((tat - now) / 1000)))
end
return out
"""

GCRA_FIELDS = 5
