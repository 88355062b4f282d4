-- Lua function: the capture of job ``job_id`` ended. Indexes it in the result cache
-- (``entry`` under ``cache_key`` for ``ttl`` seconds; "" indexes nothing), ends its
-- single-flight (``inflight`` names the job capturing these options now) and returns the
-- followers that joined it, emptying their set. Part of the result cache's script and of
-- the status transition's.
local function capture_ended(inflight, followers_key, cache_key, job_id, entry, ttl)
  if entry ~= '' then redis.call('SET', cache_key, entry, 'EX', ttl) end
  if redis.call('GET', inflight) == job_id then redis.call('DEL', inflight) end
  local followers = redis.call('SMEMBERS', followers_key)
  redis.call('DEL', followers_key)
  return followers
end
