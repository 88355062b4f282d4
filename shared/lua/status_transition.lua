-- One job state transition, with what must happen at the same time, in one round trip.
-- KEYS[1] job hash, KEYS[2] pending index; KEYS[3] the fair queue's dispatched set and
-- KEYS[4] its wake list (used when ARGV[5] is "1"); KEYS[5] a fleet semaphore (used when
-- ARGV[6] is not ""); KEYS[6] the job's inflight key, KEYS[7] its followers and KEYS[8] its
-- result-cache key (used when ARGV[10] is "1"). Unused keys may be "".
-- ARGV[1] comma-separated statuses the job may be in; ARGV[2] "1" to count an attempt;
-- ARGV[3] job id; ARGV[4] the job's new deadline in seconds from now, or "" when the
-- transition ends the job (it leaves the index); ARGV[5] "1" when an attempt starts (the
-- job's task is no longer ahead in the broker: it leaves the dispatched set and a dispatcher
-- may release another); ARGV[6] "take" to take a semaphore slot (ARGV[7] token, ARGV[8]
-- limit, ARGV[9] lease seconds) before moving, refusing the move when none is free, or
-- "give" to give ARGV[7]'s slot back whatever happens; ARGV[10] "1" when the job's capture
-- ends with the move (see capture_ended.lua: ARGV[11] cache entry or "", ARGV[12] its TTL);
-- ARGV[13..] field/value pairs.
-- Returns {flag, followers, HGETALL...}: flag 1 = done, 0 = refused (status not allowed),
-- -1 = no such job, -2 = no free slot (nothing changed).
--! include now.lua
--! include take_slot.lua
--! include capture_ended.lua
local id = ARGV[3]
local current = redis.call('HGET', KEYS[1], 'status')
local allowed = false
if current then
  for s in string.gmatch(ARGV[1], '[^,]+') do
    if ('"' .. s .. '"') == current then allowed = true end
  end
end
if allowed and ARGV[6] == 'take'
    and not take_slot(KEYS[5], tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[7]) then
  return {-2}
end
if ARGV[6] == 'give' then redis.call('ZREM', KEYS[5], ARGV[7]) end
if ARGV[5] == '1' and redis.call('ZREM', KEYS[3], id) == 1
    and redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('RPUSH', KEYS[4], 1)
end
if not current then
  redis.call('ZREM', KEYS[2], id)
  return {-1}
end
local out
if not allowed then
  out = redis.call('HGETALL', KEYS[1])
  table.insert(out, 1, {})
  table.insert(out, 1, 0)
  return out
end
if #ARGV > 12 then redis.call('HSET', KEYS[1], unpack(ARGV, 13)) end
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], id)
else
  redis.call('ZADD', KEYS[2], now() + tonumber(ARGV[4]), id)
end
local followers = {}
if ARGV[10] == '1' then
  followers = capture_ended(KEYS[6], KEYS[7], KEYS[8], id, ARGV[11], ARGV[12])
end
out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, followers)
table.insert(out, 1, 1)
return out
