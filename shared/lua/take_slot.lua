-- Lua function: takes a slot of the fleet semaphore ``key`` (a sorted set of leases scored by
-- their expiry on the Redis clock) for ``token`` until ``lease`` seconds from now, if fewer
-- than ``limit`` live leases hold one; expired leases are dropped first. True when taken.
-- Needs now.lua; part of the semaphore's own script and of the status transition's.
local function take_slot(key, limit, lease, token)
  local t = now()
  redis.call('ZREMRANGEBYSCORE', key, '-inf', t)
  if redis.call('ZCARD', key) < limit then
    redis.call('ZADD', key, t + lease, token)
    return true
  end
  return false
end
