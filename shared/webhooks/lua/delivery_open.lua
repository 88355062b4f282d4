-- KEYS[1] delivery hash, KEYS[2] due set. ARGV[1] ttl, ARGV[2] subject, ARGV[3] due score,
-- ARGV[4..] field/value pairs. Creates the delivery unless it exists: 1 created, 0 existed.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
