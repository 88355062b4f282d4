-- KEYS[1] job hash, KEYS[2] pending index, KEYS[3] the owner's recent-jobs set. ARGV[1] job id,
-- ARGV[2] TTL, ARGV[3] deadline in seconds from now, ARGV[4] creation time (unix seconds),
-- ARGV[5] most ids the recent-jobs set keeps, ARGV[6..] field/value pairs.
--! include now.lua
--! include create_job.lua
create_job(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
           tonumber(ARGV[4]), tonumber(ARGV[5]), {unpack(ARGV, 6)})
return 1
