-- State: the shard's epoch, generation and clock, for a tracker to tell whether a kept
-- Search answer still holds. ARGV: now.
local now = now_ms(ARGV[1])
local m = redis.call('HMGET', M, 'epoch', 'gen')
return {m[1] or '', m[2] or '0', now}
