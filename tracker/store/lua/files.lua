-- Files: {'OK', name, record, ...} of registered peer ARGV[1], or {'NONE'}. ARGV: peer, now.
local peer = ARGV[1]
if not registered(peer, now_ms(ARGV[2])) then return {'NONE'} end
local out = {'OK'}
for _, name in ipairs(redis.call('ZRANGE', B .. 'f:' .. peer, 0, -1)) do
  local id = redis.call('HGET', B .. 'N', name)
  local m = holding(B .. 'h:' .. id, peer)
  out[#out + 1] = name
  out[#out + 1] = string.sub(m, #peer + 2)
end
return out
