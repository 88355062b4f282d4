-- KEYS[1] owners ring, KEYS[2] waiting tokens, KEYS[3] dispatched set, KEYS[4] releasing
-- set, KEYS[5] pending index. ARGV[1] how many may be ahead, ARGV[2] lease seconds,
-- ARGV[3] seconds after which a dispatched entry is stale, ARGV[4] queued deadline,
-- ARGV[5] fair list prefix, ARGV[6] job key prefix, ARGV[7] most jobs to hand out.
-- Returns {job id, request id (JSON or ""), traceparent (JSON or ""), ...}: first the jobs
-- whose claim lease ran out unpublished, then new releases, one per owner in turn.
--! include now.lua
local t = now()
local lease = tonumber(ARGV[2])
local limit = tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', t - tonumber(ARGV[3]))
local out = {}
local handed = 0
local function hand_out(id, record)
  redis.call('ZADD', KEYS[3], t, id)
  redis.call('ZADD', KEYS[4], t + lease, id)
  redis.call('ZADD', KEYS[5], t + tonumber(ARGV[4]), id)
  table.insert(out, id)
  table.insert(out, record[2] or '')
  table.insert(out, record[3] or '')
  handed = handed + 1
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', t, 'LIMIT', 0, limit)) do
  local record = redis.call('HMGET', ARGV[6] .. id, 'status', 'request_id', 'traceparent')
  if record[1] == '"queued"' and redis.call('ZSCORE', KEYS[3], id) then
    hand_out(id, record)
  else
    redis.call('ZREM', KEYS[4], id)  -- started (so published) or finished meanwhile
  end
end
local deficit = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[3])
local steps = 0
while deficit > 0 and handed < limit and steps < 4 * limit do
  steps = steps + 1
  local owner = redis.call('LPOP', KEYS[1])
  if not owner then break end
  local list = ARGV[5] .. owner
  local id = redis.call('LPOP', list)
  if redis.call('LLEN', list) > 0 then redis.call('RPUSH', KEYS[1], owner) end
  if id then
    redis.call('LPOP', KEYS[2])
    local record = redis.call('HMGET', ARGV[6] .. id, 'status', 'request_id', 'traceparent')
    if record[1] == '"queued"' then
      hand_out(id, record)
      deficit = deficit - 1
    end
  end
end
return out
