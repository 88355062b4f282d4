-- KEYS[1] inflight key, KEYS[2] followers of this job, KEYS[3] cache key. ARGV[1] this job's
-- id, ARGV[2] its cache entry (or "" to index nothing), ARGV[3] the entry's TTL. Indexes the
-- capture, ends its single-flight and returns the followers: one round trip per finished job.
if ARGV[2] ~= '' then redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3]) end
--! include release_single_flight.lua
