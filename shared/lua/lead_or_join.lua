-- Lua function: joins a live leader of ``inflight`` (and marks ``job_id`` as sharing its
-- capture, JSON-encoded like the status store writes fields) and returns its id; else makes
-- ``job_id`` the leader and returns false. Also part of the fair queue's submit script.
local function lead_or_join(inflight, job_id, ttl, job_prefix, followers_prefix)
  local leader = redis.call('GET', inflight)
  if leader and leader ~= job_id then
    local status = redis.call('HGET', job_prefix .. leader, 'status')
    if status == '"queued"' or status == '"running"' then
      local followers = followers_prefix .. leader
      redis.call('SADD', followers, job_id)
      redis.call('EXPIRE', followers, ttl)
      redis.call('HSET', job_prefix .. job_id, 'capture_of', '"' .. leader .. '"', 'cached', 'true')
      return leader
    end
  end
  redis.call('SET', inflight, job_id, 'EX', ttl)
  return false
end
