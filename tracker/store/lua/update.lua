-- Update: add or refresh the files of ARGV[7] and drop the names of ARGV[8] (NUL-separated)
-- of the caller's registration, renewing its lease. ARGV: now, lease, peer, token, limits,
-- max files, files, removed names, lease slice.
local now, lease = now_ms(ARGV[1]), tonumber(ARGV[2])
local e = epoch(now, lease)
local peer = ARGV[3]
sweep_leases(now, tonumber(ARGV[9]))
local reg, refusal = authenticated(now)
if not reg then return {e, refusal} end
local fk = B .. 'f:' .. peer
local src = reg[1] or nil
local held, gone_bytes = {}, 0
for _, name in ipairs(split(ARGV[8], NUL)) do
  if redis.call('ZSCORE', fk, name) then
    held[#held + 1] = name
    gone_bytes = gone_bytes + #name
  end
end
local names, lows, records = unpack_files(ARGV[7])
local new, new_bytes, distinct = 0, 0, 0
for _, name in ipairs(names) do
  if not redis.call('ZSCORE', fk, name) then
    new = new + 1
    new_bytes = new_bytes + #name
    if redis.call('HEXISTS', B .. 'N', name) == 0 then distinct = distinct + #name end
  end
end
local count = tonumber(reg[2]) - #held + new
if count > tonumber(ARGV[6]) then return {e, 'PEERFILES', count} end
local limits = limits_of(ARGV[5])
local refused = nil
if src then refused = over_address(src, limits, {0, new - #held, new_bytes - gone_bytes}) end
if not refused then refused = over_index(limits, {0, new - #held, distinct}) end
if refused then return {e, refused[1], refused[2], refused[3]} end
local files, nbytes = 0, 0
for _, name in ipairs(held) do
  nbytes = nbytes - drop_entry(peer, name)
  files = files - 1
end
for i = 1, #held, 1000 do
  redis.call('ZREM', fk, unpack(held, i, math.min(i + 999, #held)))
end
for i, name in ipairs(names) do
  local added, bytes = put_entry(peer, name, lows[i], records[i])
  files = files + added
  nbytes = nbytes + bytes
end
zadd_names(fk, names)
local nb = tonumber(reg[3]) - gone_bytes + new_bytes
redis.call('HSET', B .. 'p:' .. peer, 'n', count, 'nb', nb)
if src then usage(src, 0, new - #held, new_bytes - gone_bytes) end
redis.call('ZADD', B .. 'L', now + lease, peer)
if files ~= 0 then redis.call('HINCRBY', M, 'files', files) end
if nbytes ~= 0 then redis.call('HINCRBY', M, 'nbytes', nbytes) end
flush_buckets()
if #names > 0 or #held > 0 then changed() end
return {e, 'OK'}
