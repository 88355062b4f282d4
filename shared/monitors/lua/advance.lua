-- Confirms that a monitor's slot has fired and schedules its next one.
-- KEYS[1] monitor hash, KEYS[2] due set. ARGV[1] monitor id, ARGV[2] the slot fired,
-- ARGV[3] the next slot. Returns 1 when applied, 0 when that slot was not being fired
-- (already confirmed by a scheduler that took over).
local firing = redis.call('HGET', KEYS[1], 'firing')
if not firing or tonumber(firing) ~= tonumber(ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[1], 'firing')
redis.call('HSET', KEYS[1], 'last_slot', ARGV[2])
-- XX: a monitor paused or deleted meanwhile left the due set and stays out of it.
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
return 1
