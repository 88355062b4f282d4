-- Records a run's outcome once, and the monitor's state that follows from it.
-- KEYS[1] monitor hash, KEYS[2] run data hash. ARGV[1] run id, ARGV[2] the finished run
-- (JSON), ARGV[3] 'good' (becomes the baseline) or 'failed'.
-- Returns {applied (1/0), failures in a row after this run}. A run already finished (the
-- hook ran twice for one job) changes nothing.
local current = redis.call('HGET', KEYS[2], ARGV[1])
if not current then return {0, 0} end
if cjson.decode(current)['status'] ~= 'queued' then return {0, 0} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return {1, 0} end
if ARGV[3] == 'good' then
  redis.call('HSET', KEYS[1], 'baseline', ARGV[1], 'failures', 0)
  return {1, 0}
end
return {1, redis.call('HINCRBY', KEYS[1], 'failures', 1)}
