-- Audit: what a recount of the whole shard finds wrong, as lines (none: consistent). Walks
-- everything; for tests and checks, not for serving.
local problems = {}
local function problem(text) problems[#problems + 1] = text end
local m = redis.call('HMGET', M, 'peers', 'files', 'nbytes')
local registered = redis.call('ZRANGE', B .. 'L', 0, -1)
local in_order = redis.call('ZRANGE', B .. 'P', '-', '+', 'BYLEX')
if #registered ~= #in_order then
  problem('leases ' .. #registered .. ', peers in search order ' .. #in_order)
end
if #registered ~= (tonumber(m[1]) or 0) then
  problem('peers counted ' .. (m[1] or 0) .. ', leases ' .. #registered)
end
-- Every (peer, name) that should be in the catalog: registered peers' and departed ones'.
local expected, entries = {}, 0
local usage = {}
for _, peer in ipairs(registered) do
  local p = redis.call('HMGET', B .. 'p:' .. peer, 'tok', 'n', 'nb', 'src')
  if not p[1] then problem('peer ' .. peer .. ' has a lease but no registration') end
  if not redis.call('ZSCORE', B .. 'P', peer) then problem('peer ' .. peer .. ' is not in search order') end
  local names = redis.call('ZRANGE', B .. 'f:' .. peer, 0, -1)
  local nb = 0
  for _, name in ipairs(names) do
    expected[peer .. NUL .. name] = true
    entries = entries + 1
    nb = nb + #name
  end
  if #names ~= (tonumber(p[2]) or -1) or nb ~= (tonumber(p[3]) or -1) then
    problem('peer ' .. peer .. ' counts ' .. tostring(p[2]) .. ' files, has ' .. #names)
  end
  if p[4] then
    local u = usage[p[4]] or {0, 0, 0}
    usage[p[4]] = {u[1] + 1, u[2] + #names, u[3] + nb}
  end
end
for _, entry in ipairs(redis.call('LRANGE', B .. 'D', 0, -1)) do
  local seq, _, peer = string.match(entry, '^(%d+) (%d) (.*)$')
  local cursor = redis.call('HGET', B .. 'c', seq)
  local left = redis.call('ZRANGE', B .. 'x:' .. seq, cursor and ('(' .. cursor) or '-', '+', 'BYLEX')
  for _, name in ipairs(left) do
    expected[peer .. NUL .. name] = true
    entries = entries + 1
  end
end
for src, u in pairs(usage) do
  local have = {redis.call('HGET', B .. 'Ap', src), redis.call('HGET', B .. 'Af', src),
    redis.call('HGET', B .. 'Ab', src)}
  for i = 1, 3 do
    if (tonumber(have[i]) or 0) ~= u[i] then problem('address ' .. src .. ' usage ' .. i .. ' counted ' .. tostring(have[i]) .. ', recounted ' .. u[i]) end
  end
end
if redis.call('HLEN', B .. 'Ap') ~= (function() local n = 0 for _ in pairs(usage) do n = n + 1 end return n end)() then
  problem('addresses counted ' .. redis.call('HLEN', B .. 'Ap'))
end
-- Every name: its id both ways, its holders, its buckets, its holders' digests.
local held, nbytes = 0, 0
local contents, content_count = {}, 0
local ids = redis.call('HGETALL', B .. 'I')
for i = 1, #ids, 2 do
  local id, name = ids[i], ids[i + 1]
  nbytes = nbytes + #name
  if redis.call('HGET', B .. 'N', name) ~= id then problem('name id ' .. id .. ' is not its name\'s') end
  local members = redis.call('ZRANGE', B .. 'h:' .. id, 0, -1)
  if #members == 0 then problem('name ' .. name .. ' has no holder') end
  for _, member in ipairs(members) do
    local peer = string.sub(member, 1, string.find(member, NUL, 1, true) - 1)
    if not expected[peer .. NUL .. name] then
      problem('entry ' .. peer .. ' ' .. name .. ' belongs to no registration')
    end
    expected[peer .. NUL .. name] = nil
    held = held + 1
    for _, km in ipairs(content_members(peer, id, string.sub(member, #peer + 2))) do
      if not redis.call('ZSCORE', km[1], km[2]) then
        problem('entry ' .. peer .. ' ' .. name .. ' is not in the content index')
      end
      contents[km[1] .. NUL .. km[2]] = true
      content_count = content_count + 1
    end
  end
  for _, k in ipairs(buckets(lowered(id, name))) do
    local bitmap = B .. 'G:' .. k
    local indexed
    if redis.call('EXISTS', bitmap) == 1 then
      indexed = redis.call('GETBIT', bitmap, id) == 1
    else
      indexed = redis.call('SISMEMBER', B .. 'g:' .. k, id) == 1
    end
    if not indexed then problem('name ' .. name .. ' is not indexed') end
  end
end
for key in pairs(expected) do problem('entry ' .. key .. ' is not in the catalog') end
if redis.call('HLEN', B .. 'N') ~= #ids / 2 then problem('name ids are not one to one') end
if held ~= entries or held ~= (tonumber(m[2]) or 0) then
  problem('entries counted ' .. tostring(m[2]) .. ', recounted ' .. held .. ' held and ' .. entries .. ' listed')
end
if nbytes ~= (tonumber(m[3]) or 0) then
  problem('name bytes counted ' .. tostring(m[3]) .. ', recounted ' .. nbytes)
end
-- Every word entry points to a live name.
for k = 0, 65535 do
  local set, bitmap = B .. 'g:' .. k, B .. 'G:' .. k
  local ids = {}
  if redis.call('EXISTS', set) == 1 then ids = redis.call('SMEMBERS', set) end
  if redis.call('EXISTS', bitmap) == 1 then
    if #ids > 0 then problem('bucket ' .. k .. ' is both a set and a bitmap') end
    ids = bitmap_ids(redis.call('GET', bitmap))
  end
  for _, id in ipairs(ids) do
    if not redis.call('HGET', B .. 'I', id) then problem('bucket ' .. k .. ' holds gone name id ' .. id) end
  end
end
-- Every content entry is a holder's.
local indexed = 0
for k = 0, 65535 do
  for _, kind in ipairs({'S:', 'T:'}) do
    local key = B .. kind .. k
    for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
      indexed = indexed + 1
      if not contents[key .. NUL .. member] then
        problem('content entry ' .. kind .. k .. ' belongs to no holder')
      end
    end
  end
end
if indexed ~= content_count then
  problem('content entries ' .. indexed .. ', holders\' digests ' .. content_count)
end
for _, id in ipairs(redis.call('SMEMBERS', B .. 'F')) do
  if redis.call('HGET', B .. 'I', id) then problem('name id ' .. id .. ' is both free and used') end
end
return problems
