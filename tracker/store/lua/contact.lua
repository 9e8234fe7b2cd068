-- Contact: how to reach registered peer ARGV[2]: {epoch, 'OK', token, identity, source (''
-- for none), has source, reachable, local addresses}, or {epoch, 'UNKNOWN'}. ARGV: now, peer.
local now = now_ms(ARGV[1])
local deadline = redis.call('ZSCORE', B .. 'L', ARGV[2])
if not deadline or tonumber(deadline) <= now then return {'', 'UNKNOWN'} end
local r = redis.call('HMGET', B .. 'p:' .. ARGV[2], 'tok', 'id', 'src', 'reach', 'local')
return {'', 'OK', r[1], r[2], r[3] or '', r[3] and '1' or '0', r[4], r[5] or ''}
