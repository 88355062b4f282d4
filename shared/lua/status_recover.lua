-- Recovers one job the sweeper found past its deadline, unless it moved meanwhile.
-- KEYS[1] job hash, KEYS[2] pending index. ARGV[1] job id, ARGV[2] recoveries allowed,
-- ARGV[3] attempts allowed, ARGV[4] new deadline (seconds from now) of a re-enqueued job,
-- ARGV[5] JSON error of a lost job, ARGV[6] JSON finished_at.
-- Returns {action, HGETALL...}: action "retry" (a parked retry is due), "requeue", "lost",
-- or {"skip"} when there is nothing to do.
--! include now.lua
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score then return {'skip'} end
local t = now()
if tonumber(score) > t then return {'skip'} end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= '"queued"' and status ~= '"running"' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'skip'}
end
local action
if status == '"queued"' and redis.call('HGET', KEYS[1], 'parked') == 'true' then
  action = 'retry'
  redis.call('HSET', KEYS[1], 'parked', 'false')
else
  local recoveries = tonumber(redis.call('HGET', KEYS[1], 'recoveries') or '0')
  local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
  if recoveries >= tonumber(ARGV[2])
      or (status == '"running"' and attempts >= tonumber(ARGV[3])) then
    action = 'lost'
    redis.call('HSET', KEYS[1], 'status', '"failed"', 'error', ARGV[5], 'finished_at', ARGV[6])
    redis.call('ZREM', KEYS[2], ARGV[1])
  else
    action = 'requeue'
    redis.call('HSET', KEYS[1], 'status', '"queued"', 'recoveries', recoveries + 1)
  end
end
if action ~= 'lost' then
  redis.call('ZADD', KEYS[2], t + tonumber(ARGV[4]), ARGV[1])
end
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, action)
return out
