-- Lua function writing a new job's record (``fields``: field/value pairs) with its TTL,
-- putting it in the pending index (deadline in seconds from now) and first among its owner's
-- recent jobs. Needs :data:`NOW_LUA`; also part of the fair queue's submit script.
local function create_job(job_key, pending, recent, job_id, ttl, deadline, created, cap, fields)
  redis.call('HSET', job_key, unpack(fields))
  redis.call('EXPIRE', job_key, ttl)
  redis.call('ZADD', pending, now() + deadline, job_id)
  redis.call('ZADD', recent, created, job_id)
  redis.call('ZREMRANGEBYRANK', recent, 0, -cap - 1)
  redis.call('EXPIRE', recent, ttl)
end
