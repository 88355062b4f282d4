-- KEYS[1] job hash, KEYS[2] pending index, optional KEYS[3] the fair queue's dispatched set
-- and KEYS[4] its wake list (an attempt starting: the job's task is no longer ahead in the
-- broker, so a dispatcher may release another). ARGV[1] comma-separated statuses the job may
-- be in; ARGV[2] "1" to count an attempt; ARGV[3] job id; ARGV[4] the job's new deadline in
-- seconds from now, or "" when the transition ends the job (it leaves the index); ARGV[5..]
-- field/value pairs.
-- Returns {flag, HGETALL...}: flag 1 = done, 0 = refused (status not allowed), -1 = no such job.
--! include now.lua
if KEYS[3] and redis.call('ZREM', KEYS[3], ARGV[3]) == 1
    and redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('RPUSH', KEYS[4], 1)
end
local current = redis.call('HGET', KEYS[1], 'status')
if not current then
  redis.call('ZREM', KEYS[2], ARGV[3])
  return {-1}
end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if ('"' .. s .. '"') == current then allowed = true end
end
if not allowed then
  local out = redis.call('HGETALL', KEYS[1])
  table.insert(out, 1, 0)
  return out
end
if #ARGV > 4 then redis.call('HSET', KEYS[1], unpack(ARGV, 5)) end
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], ARGV[3])
else
  redis.call('ZADD', KEYS[2], now() + tonumber(ARGV[4]), ARGV[3])
end
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, 1)
return out
