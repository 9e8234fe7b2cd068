-- Nonce: take the key ARGV[4] of a signed Join's nonce, kept until ARGV[2] (Unix seconds),
-- in the zset KEYS[1] that every replica shares (not a shard's: common.lua's names go
-- unused here). {'OK'}, {'SEEN'} when it is kept already, or {'FULL', oldest expiry} when
-- ARGV[3] keys are kept and none has expired at ARGV[1]. ARGV: now, expires, limit, key.
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
if redis.call('ZSCORE', key, ARGV[4]) then return {'SEEN'} end
if redis.call('ZCARD', key) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {'FULL', oldest[2]}
end
redis.call('ZADD', key, ARGV[2], ARGV[4])
return {'OK'}
