-- Join: register ARGV[3] with the files of ARGV[12], replacing its own registration, or
-- answer why not. ARGV: now, lease, peer, token, identity, certificate, source, has source,
-- reachable, local addresses, limits, files, lease slice.
local now, lease = now_ms(ARGV[1]), tonumber(ARGV[2])
local e = epoch(now, lease)
local peer, identity, reach = ARGV[3], ARGV[5], ARGV[9]
local src = ARGV[8] == '1' and ARGV[7] or nil
sweep_leases(now, tonumber(ARGV[13]))
local old = registered(peer, now)
if old and holds_against(old[5], old[6], identity, reach == '1') then return {e, 'TAKEN'} end
local names, lows, records = unpack_files(ARGV[12])
local nb, distinct = 0, 0
for _, name in ipairs(names) do
  nb = nb + #name
  if redis.call('HEXISTS', B .. 'N', name) == 0 then distinct = distinct + #name end
end
local gone = {0, 0, 0}
if old then gone = {1, tonumber(old[2]) or 0, tonumber(old[3]) or 0} end
local mine = {0, 0, 0}
if old and src and old[1] == src then mine = gone end
local limits = limits_of(ARGV[11])
-- Per address: what this Join adds less what the registration it replaces had there.
local refused = nil
if src then refused = over_address(src, limits, {1 - mine[1], #names - mine[2], nb - mine[3]}) end
if not refused then refused = over_index(limits, {1 - gone[1], #names - gone[2], distinct}) end
if refused then return {e, refused[1], refused[2], refused[3]} end
local fk = B .. 'f:' .. peer
local files, nbytes = 0, 0
if old then
  if old[1] then usage(old[1], -1, -gone[2], -gone[3]) end
  local keep = {}
  for _, name in ipairs(names) do keep[name] = true end
  local dropped = {}
  for _, name in ipairs(redis.call('ZRANGE', fk, 0, -1)) do
    if not keep[name] then
      nbytes = nbytes - drop_entry(peer, name)
      files = files - 1
      dropped[#dropped + 1] = name
    end
  end
  for i = 1, #dropped, 1000 do
    redis.call('ZREM', fk, unpack(dropped, i, math.min(i + 999, #dropped)))
  end
else
  finish_departed(peer)
  redis.call('ZADD', B .. 'P', 0, peer)
  redis.call('HINCRBY', M, 'peers', 1)
end
for i, name in ipairs(names) do
  local added, bytes = put_entry(peer, name, lows[i], records[i])
  files = files + added
  nbytes = nbytes + bytes
end
zadd_names(fk, names)
redis.call('DEL', B .. 'p:' .. peer)
local fields = {'tok', ARGV[4], 'id', identity, 'cert', ARGV[6], 'reach', reach,
  'local', ARGV[10], 'n', #names, 'nb', nb}
if src then
  fields[#fields + 1] = 'src'
  fields[#fields + 1] = src
  usage(src, 1, #names, nb)
end
redis.call('HSET', B .. 'p:' .. peer, unpack(fields))
redis.call('ZADD', B .. 'L', now + lease, peer)
if files ~= 0 then redis.call('HINCRBY', M, 'files', files) end
if nbytes ~= 0 then redis.call('HINCRBY', M, 'nbytes', nbytes) end
flush_buckets()
changed()
return {e, 'OK'}
