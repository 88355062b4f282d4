-- KEYS[1] delivery hash, KEYS[2] attempt list, KEYS[3] due set. ARGV[1] round the attempt
-- belongs to, ARGV[2] attempt JSON, ARGV[3] attempts so far, ARGV[4] ttl, ARGV[5] subject,
-- ARGV[6] next due score or '' (final), ARGV[7] max logged attempts, ARGV[8..] fields.
-- The attempt is always logged; the state changes only if no redelivery began meanwhile.
-- Returns 1 applied, 0 superseded by a redelivery, -1 no such delivery.
local current = redis.call('HGET', KEYS[1], 'round')
if not current then return -1 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[7]), -1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('HSET', KEYS[1], 'attempts', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if current ~= ARGV[1] then return 0 end
if #ARGV > 7 then redis.call('HSET', KEYS[1], unpack(ARGV, 8)) end
if ARGV[6] == '' then
  redis.call('ZREM', KEYS[3], ARGV[5])
else
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
end
return 1
