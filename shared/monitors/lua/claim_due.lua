-- Claims the monitors whose slot is due, for one scheduler, atomically.
-- KEYS[1] due set. ARGV[1] now, ARGV[2] lease end, ARGV[3] most to claim, ARGV[4] monitor
-- key prefix. Returns {monitor id, slot, ...}.
-- Each claimed monitor's due entry moves to the lease end: if its scheduler dies before
-- firing it, the entry comes due again then and another scheduler takes over. The slot
-- being fired is kept in the monitor's 'firing' field until the firing is confirmed, so a
-- takeover fires the same slot (same run id), never a later one in its place.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
local out = {}
for i = 1, #due, 2 do
  local id = due[i]
  local key = ARGV[4] .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    local slot = redis.call('HGET', key, 'firing')
    if not slot then
      slot = due[i + 1]
      redis.call('HSET', key, 'firing', slot)
    end
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id)
    table.insert(out, id)
    table.insert(out, slot)
  end
end
return out
