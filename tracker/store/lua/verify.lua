-- Verify: whether ARGV[4] is the token of ARGV[3]'s live registration, renewing nothing.
-- ARGV: now, lease, peer, token, lease slice.
local now, lease = now_ms(ARGV[1]), tonumber(ARGV[2])
local e = epoch(now, lease)
sweep_leases(now, tonumber(ARGV[5]))
local reg, refusal = authenticated(now)
if not reg then return {e, refusal} end
return {e, 'OK'}
