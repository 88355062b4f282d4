-- KEYS[1] delivery hash, KEYS[2] due set. ARGV[1] subject, ARGV[2] now, ARGV[3] due score,
-- ARGV[4] ttl. Starts a new round due now: 1 done, 0 no such delivery.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'round', 1)
redis.call('HSET', KEYS[1], 'state', 'scheduled', 'failures', '0', 'next_attempt_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
