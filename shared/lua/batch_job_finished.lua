-- KEYS[1] batch hash. ARGV[1] finish time (JSON), ARGV[2] job id. Returns 1 when this call
-- completed the batch, 0 otherwise (job already counted, batch unknown or still running).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'ended:' .. ARGV[2], 1) == 0 then return 0 end
local left = redis.call('HINCRBY', KEYS[1], 'remaining', -1)
if left == 0 then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[1])
  return 1
end
return 0
