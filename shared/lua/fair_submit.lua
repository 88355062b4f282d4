-- KEYS[1] job hash, KEYS[2] pending index, KEYS[3] owner's recent jobs, KEYS[4] owner's fair
-- list, KEYS[5] owners ring, KEYS[6] waiting tokens, KEYS[7] wake list, KEYS[8] inflight key
-- (used only when ARGV[7] is not ""). ARGV[1] job id, ARGV[2] TTL, ARGV[3] queued deadline,
-- ARGV[4] creation time, ARGV[5] recent-jobs cap, ARGV[6] owner, ARGV[7] single-flight TTL
-- or "", ARGV[8] job key prefix, ARGV[9] followers prefix, ARGV[10..] field/value pairs.
-- Returns the leader's id when the job joined a capture in flight, else nil (queued).
--! include now.lua
--! include create_job.lua
--! include lead_or_join.lua
create_job(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
           tonumber(ARGV[4]), tonumber(ARGV[5]), {unpack(ARGV, 10)})
if ARGV[7] ~= '' then
  local leader = lead_or_join(KEYS[8], ARGV[1], ARGV[7], ARGV[8], ARGV[9])
  if leader then return leader end
end
-- Waiting its turn in Redis, the job cannot lose a queue message: no deadline until its
-- release (the claim sets the queued deadline), only its record's lifetime.
redis.call('ZADD', KEYS[2], now() + tonumber(ARGV[2]), ARGV[1])
if redis.call('RPUSH', KEYS[4], ARGV[1]) == 1 then redis.call('RPUSH', KEYS[5], ARGV[6]) end
redis.call('RPUSH', KEYS[6], 1)
if redis.call('LLEN', KEYS[7]) == 0 then redis.call('RPUSH', KEYS[7], 1) end
return false
