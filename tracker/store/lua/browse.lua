-- Browse: {'OK', cert, reach, name, record, ...}: up to ARGV[4] files of registered peer
-- ARGV[2] whose names start with ARGV[3], after the name ARGV[5] when ARGV[6] == '1', in byte
-- order; {'NONE'} when the peer is not registered. ARGV: now, peer, prefix, wanted, after,
-- has after.
local peer, prefix = ARGV[2], ARGV[3]
if not registered(peer, now_ms(ARGV[1])) then return {'NONE'} end
local from = '[' .. prefix
if ARGV[6] == '1' and ARGV[5] >= prefix then from = '(' .. ARGV[5] end
-- No name holds the byte 255 (names are UTF-8): every name under the prefix sorts before it.
local names = redis.call('ZRANGE', B .. 'f:' .. peer, from, '[' .. prefix .. '\255', 'BYLEX',
  'LIMIT', 0, tonumber(ARGV[4]))
local p = redis.call('HMGET', B .. 'p:' .. peer, 'cert', 'reach')
local out = {'OK', p[1] or '', p[2] or '0'}
for _, name in ipairs(names) do
  local id = redis.call('HGET', B .. 'N', name)
  local m = holding(B .. 'h:' .. id, peer)
  out[#out + 1] = name
  out[#out + 1] = string.sub(m, #peer + 2)
end
return out
