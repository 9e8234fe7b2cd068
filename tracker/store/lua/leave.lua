-- Leave: take the caller's registration out; its files go a slice at a time.
-- ARGV: now, lease, peer, token, lease slice.
local now, lease = now_ms(ARGV[1]), tonumber(ARGV[2])
local e = epoch(now, lease)
sweep_leases(now, tonumber(ARGV[5]))
local reg, refusal = authenticated(now)
if not reg then return {e, refusal} end
depart(ARGV[3], false)
return {e, 'OK'}
