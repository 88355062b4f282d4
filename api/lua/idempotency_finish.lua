-- KEYS[1] record. ARGV: token, then "store" + ttl seconds + field/value pairs, or "release".
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if ARGV[2] == 'release' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'state', 'done', unpack(ARGV, 4))
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
