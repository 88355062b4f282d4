-- KEYS[1] due set. ARGV[1] now, ARGV[2] lease end, ARGV[3] limit. Returns the due subjects,
-- each pushed to the lease end.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id) end
return ids
