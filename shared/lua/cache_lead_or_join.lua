-- KEYS[1] inflight key. ARGV[1] this job's id, ARGV[2] TTL, ARGV[3] job key prefix,
-- ARGV[4] followers key prefix.
--! include lead_or_join.lua
return lead_or_join(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
