-- Claim: whether a Join of identity ARGV[4] (proven: ARGV[5] == '1') may take address
-- ARGV[3] now. Reads only. ARGV: now, lease, peer, identity, proven.
local now = now_ms(ARGV[1])
local deadline = redis.call('ZSCORE', B .. 'L', ARGV[3])
if deadline and tonumber(deadline) > now then
  local r = redis.call('HMGET', B .. 'p:' .. ARGV[3], 'id', 'reach')
  if holds_against(r[1], r[2], ARGV[4], ARGV[5] == '1') then return {'', 'TAKEN'} end
end
return {'', 'OK'}
