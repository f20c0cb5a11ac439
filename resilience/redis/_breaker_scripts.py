"""The Lua scripts of ``RedisCircuitBreaker``: the fleet's state, changed only by these.

KEYS[1] is the fleet's state, a hash: ``state`` (``c`` closed, ``o`` open,
``h`` half-open), ``gen`` (the generation, one more at every change),
``until`` (server microseconds: when OPEN turns HALF_OPEN, or when the
half-open probe owner's reservation lapses) and ``owner`` (the process
running the fleet's probes). Each change is a compare-and-set on the
generation inside one script, so no lock is held around anyone's call,
and each is published on the policy's channel.

KEYS[2] holds the outcome counts of one generation: fields
``<bucket>:<process>:c`` (calls) and ``...:f`` (failures), a bucket being
the server time divided by the bucket width. Counts sent for an older
generation are dropped; buckets older than the fleet window are deleted as
they are read. Time is the server's ``TIME``; every key gets a TTL.

Replies: FIELDS integers — the state (0 closed, 1 open, 2 half-open), the
generation, the microseconds until ``until`` (0 if past or none), and 1 if
the asking process runs the fleet's probes.
"""

from __future__ import annotations

__all__ = ["FIELDS", "REPORT", "SYNC"]

FIELDS = 4

_PRELUDE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local pid = ARGV[1]
local s = redis.call('HMGET', KEYS[1], 'state', 'gen', 'until', 'owner')
local state = s[1] or 'c'
local gen = tonumber(s[2] or '0')
local till = tonumber(s[3] or '0')
local owner = s[4] or ''
local changed = false
local function finish(ttl, channel)
  if changed then
    redis.call('HSET', KEYS[1], 'state', state, 'gen', gen, 'until', till, 'owner', owner)
    redis.call('PUBLISH', channel, state .. ':' .. gen)
  end
  redis.call('PEXPIRE', KEYS[1], ttl)
  local code = 0
  if state == 'o' then code = 1 elseif state == 'h' then code = 2 end
  local left = 0
  if till > now then left = till - now end
  local mine = 0
  if owner == pid then mine = 1 end
  return {code, gen, left, mine}
end
"""

# ARGV: 1 process id; 2 calls and 3 failures since its last exchange, 4 the
# generation they were counted in; 5 bucket width (us), 6 buckets in the
# fleet window; 7 minimum_calls, 8 failure_rate, 9 quorum; 10 the open
# duration (us); 11 the keys' TTL (ms); 12 the channel.
#
# OPEN past its time turns HALF_OPEN; in HALF_OPEN the first process to ask
# takes the probes for an open duration (if it dies, the next takes them
# after that). In CLOSED the counts are added, and the fleet opens when, over
# the window, calls >= minimum_calls, failures >= failure_rate of them, and
# at least quorum processes each failed at >= failure_rate of their own calls.
SYNC = _PRELUDE + """
if state == 'o' and now >= till then
  state = 'h'; gen = gen + 1; owner = ''; till = 0; changed = true
end
if state == 'h' and owner ~= '' and now >= till then
  owner = ''; changed = true
end
if state == 'h' and owner == '' then
  owner = pid; till = now + tonumber(ARGV[10]); changed = true
end
if state == 'c' and tonumber(ARGV[4]) == gen then
  local width = tonumber(ARGV[5])
  local bucket = math.floor(now / width)
  local calls = tonumber(ARGV[2])
  local fails = tonumber(ARGV[3])
  if calls > 0 then
    redis.call('HINCRBY', KEYS[2], bucket .. ':' .. pid .. ':c', calls)
    if fails > 0 then
      redis.call('HINCRBY', KEYS[2], bucket .. ':' .. pid .. ':f', fails)
    end
  end
  local first = bucket - tonumber(ARGV[6]) + 1
  local flat = redis.call('HGETALL', KEYS[2])
  local per = {}
  local total_c, total_f = 0, 0
  local stale = {}
  for i = 1, #flat, 2 do
    local b, p, kind = string.match(flat[i], '^(%-?%d+):(.+):([cf])$')
    if b == nil or tonumber(b) < first then
      stale[#stale + 1] = flat[i]
    else
      local n = tonumber(flat[i + 1])
      local seen = per[p]
      if seen == nil then seen = {0, 0}; per[p] = seen end
      if kind == 'c' then
        seen[1] = seen[1] + n; total_c = total_c + n
      else
        seen[2] = seen[2] + n; total_f = total_f + n
      end
    end
  end
  if #stale > 0 then redis.call('HDEL', KEYS[2], unpack(stale)) end
  if #flat > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[11]) end
  local rate = tonumber(ARGV[8])
  if total_c >= tonumber(ARGV[7]) and total_f >= rate * total_c then
    local failing = 0
    for _, seen in pairs(per) do
      if seen[1] > 0 and seen[2] >= rate * seen[1] then failing = failing + 1 end
    end
    if failing >= tonumber(ARGV[9]) then
      state = 'o'; gen = gen + 1; owner = ''; till = now + tonumber(ARGV[10]); changed = true
    end
  end
end
return finish(ARGV[11], ARGV[12])
"""

# ARGV: 1 process id, 2 the generation its probes ran in, 3 1 if they
# succeeded (0: one failed), 4 the open duration (us), 5 the keys' TTL (ms),
# 6 the channel. Only the probe owner of that generation can close or reopen
# the fleet: a late or stray report changes nothing.
REPORT = _PRELUDE + """
if state == 'h' and gen == tonumber(ARGV[2]) and owner == pid then
  if ARGV[3] == '1' then
    state = 'c'; till = 0
  else
    state = 'o'; till = now + tonumber(ARGV[4])
  end
  gen = gen + 1; owner = ''; changed = true
end
return finish(ARGV[5], ARGV[6])
"""
