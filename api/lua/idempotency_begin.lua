-- KEYS[1] record. ARGV: fingerprint, token, lock ms. Takes the key, or returns the record.
local current = redis.call('HGETALL', KEYS[1])
if #current == 0 then
  redis.call('HSET', KEYS[1], 'state', 'inflight', 'fingerprint', ARGV[1], 'token', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {}
end
return current
