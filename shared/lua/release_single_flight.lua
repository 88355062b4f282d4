-- Ends a job's single-flight. KEYS[1] inflight key, KEYS[2] followers of this job. ARGV[1]
-- this job's id. Returns the followers.
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local followers = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
return followers
