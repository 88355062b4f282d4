-- KEYS[1] inflight key, KEYS[2] followers of this job, KEYS[3] cache key. ARGV[1] this job's
-- id, ARGV[2] its cache entry (or "" to index nothing), ARGV[3] the entry's TTL. Indexes the
-- capture, ends its single-flight and returns the followers: one round trip per finished job
-- (for the jobs whose final transition did not already do it, see status_transition.lua).
--! include capture_ended.lua
return capture_ended(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
