-- Snapshot: every registered peer of the shard and its files: {peer, {name, record, ...}, ...},
-- once the registrations whose lease ran out have departed. ARGV: now, lease slice.
sweep_leases(now_ms(ARGV[1]), tonumber(ARGV[2]))
local out = {}
for _, peer in ipairs(redis.call('ZRANGE', B .. 'P', '-', '+', 'BYLEX')) do
  local files = {}
  for _, name in ipairs(redis.call('ZRANGE', B .. 'f:' .. peer, 0, -1)) do
    local id = redis.call('HGET', B .. 'N', name)
    local m = holding(B .. 'h:' .. id, peer)
    files[#files + 1] = name
    files[#files + 1] = string.sub(m, #peer + 2)
  end
  out[#out + 1] = peer
  out[#out + 1] = files
end
return out
