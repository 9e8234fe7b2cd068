-- Heartbeat: renew the caller's lease. ARGV: now, lease, peer, token, lease slice.
local now, lease = now_ms(ARGV[1]), tonumber(ARGV[2])
local e = epoch(now, lease)
sweep_leases(now, tonumber(ARGV[5]))
local reg, refusal = authenticated(now)
if not reg then return {e, refusal} end
redis.call('ZADD', B .. 'L', now + lease, ARGV[3])
return {e, 'OK'}
