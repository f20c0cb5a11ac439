"""The Lua scripts of ``RedisBulkhead``: a sorted set of leases scored by their expiry.

KEYS[1] is the set of holders: each member a lease id (the holder's process
id and a number), its score the server time, in microseconds, at which the
lease runs out unless renewed. A lease past its score holds nothing: the
next acquisition drops it, so a crashed holder's permit comes back
``lease_ttl`` after its last renewal. Time is the server's ``TIME``, never a
client's clock. The set's TTL follows its latest expiry: when every lease
has run out the key is gone too (and an empty set is deleted by Redis).
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "ACQUIRE_FIELDS", "RELEASE", "RELEASE_FIELDS", "RENEW"]

# What each script starts with: the server's time in microseconds (below
# 2**53, so a Lua number holds it exactly), and a function that sets the
# set's TTL to the moment its latest lease runs out.
_PRELUDE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local function expire_with_last()
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((tonumber(last[2]) - now) / 1000)))
  end
end
"""

# KEYS[2] the ids given up (see RELEASE). ARGV[1] the limit; ARGV[2] the
# lease's life in microseconds; ARGV[3] the lease id. An id that holds a
# lease already (a retry whose first reply was lost) keeps it and has its
# life renewed: asking again never takes two. A given-up id is refused.
#
# Reply: ACQUIRE_FIELDS integers — allowed (1/0); the holders now; the
# microseconds until the earliest lease runs out (-1: none is held), when a
# waiter should look again even if no release wakes it.
ACQUIRE = _PRELUDE + """
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
local allowed = 0
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
  allowed = 1
elseif held < limit and not redis.call('ZSCORE', KEYS[2], ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
  held = held + 1
  allowed = 1
end
local next = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then
  next = math.max(0, math.ceil(tonumber(first[2]) - now))
  expire_with_last()
end
return {allowed, held, next}
"""

ACQUIRE_FIELDS = 3

# KEYS[2] the ids given up. ARGV[1] the lease id; ARGV[2] the channel told
# of the release (subscribed waiters of every process wake up and ask
# again); ARGV[3] the lease's life in microseconds. Only a lease that was
# there is announced. An id that holds nothing is given up for a lease's
# life: its acquisition may still be on its way (a caller cancelled while
# the script was in flight, on another connection, so possibly arriving
# later) and is then refused, instead of taking a permit nobody would give
# back before it ran out.
#
# Reply: RELEASE_FIELDS integers — 1 if the lease was there, else 0.
RELEASE = _PRELUDE + """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[1])
else
  local ttl = tonumber(ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], math.max(1, math.ceil(ttl / 1000)))
end
return {removed}
"""

RELEASE_FIELDS = 1

# ARGV[1] the lease's life in microseconds; ARGV[2...] the ids to renew.
# A lease still in the set is renewed even past its score: it is dropped
# only by an acquisition, and an acquisition that ran since would have
# dropped it, so nobody holds its place. One that is gone is lost: its
# holder goes on without a permit the fleet counts.
#
# Reply: one integer per id — 1 renewed, 0 lost.
RENEW = _PRELUDE + """
local ttl = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
expire_with_last()
return out
"""
