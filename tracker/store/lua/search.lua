-- Search: up to ARGV[5] matches after the key (ARGV[7], ARGV[8]) when ARGV[6] == '1', in
-- (peer id, name) order, for the exact name ARGV[11] (ARGV[3] == 'n'), every lowered word
-- ARGV[11..] (ARGV[3] == 'w'), or the files whose sha256 (ARGV[3] == 'S') or pieces root
-- ('T') is the 32 raw bytes ARGV[11]. A keyword search with more than ARGV[10] candidate
-- names is broad: unless ARGV[4] == '1' it answers BROAD at once, else it walks the peers in
-- order, looking at no more than ARGV[9] entries. ARGV: now, lease, mode, broad allowed,
-- wanted, has after, after peer, after name, budget, max candidates, name, words or digest...
local now, lease = now_ms(ARGV[1]), tonumber(ARGV[2])
local e = epoch(now, lease)
local wanted, budget, most = tonumber(ARGV[5]), tonumber(ARGV[9]), tonumber(ARGV[10])
local has_after, ap, an = ARGV[6] == '1', ARGV[7], ARGV[8]
local CHUNK = 256

local alive = {}
local function live(peer)
  local known = alive[peer]
  if known == nil then
    local deadline = redis.call('ZSCORE', B .. 'L', peer)
    known = deadline ~= false and tonumber(deadline) > now
    alive[peer] = known
  end
  return known
end

local words = {}
for i = 11, #ARGV do words[#words + 1] = ARGV[i] end
local function matches(low)
  for _, word in ipairs(words) do
    if not string.find(low, word, 1, true) then return false end
  end
  return true
end

local function record_of(peer, name)
  local id = redis.call('HGET', B .. 'N', name)
  local m = holding(B .. 'h:' .. id, peer)
  return string.sub(m, #peer + 2)
end

-- The first `wanted` live holders of name id `id` (named `name`) after the key, into
-- `found` (only those can be on the page); how many holders it looked at.
local function holders(id, name, found)
  local hk = B .. 'h:' .. id
  local from = '-'
  if has_after then
    if name > an then from = '[' .. ap .. NUL else from = '[' .. ap .. '\1' end
  end
  local taken, looked = 0, 0
  while taken < wanted do
    local members = redis.call('ZRANGE', hk, from, '+', 'BYLEX', 'LIMIT', 0, wanted)
    for _, m in ipairs(members) do
      looked = looked + 1
      local at = string.find(m, NUL, 1, true)
      local peer = string.sub(m, 1, at - 1)
      if live(peer) then
        found[#found + 1] = {peer .. NUL .. name, peer, name, string.sub(m, at + 1)}
        taken = taken + 1
        if taken == wanted then break end
      end
    end
    if #members < wanted then break end
    from = '(' .. members[#members]
  end
  return looked
end

local function by_key(a, b) return a[1] < b[1] end

-- The first `wanted` live entries after the key whose file has `digest` as its sha256 (kind
-- 'S') or pieces root ('T'), in key order, and how many entries it looked at. The index
-- keeps one peer's entries together but in name id order, so all of the last peer's are
-- taken before the cut.
local function content(kind, digest)
  local key = B .. kind .. ':' .. (string.byte(digest, 1) * 256 + string.byte(digest, 2))
  local from = has_after and ('[' .. digest .. ap .. NUL) or ('[' .. digest)
  local upto = '[' .. digest .. '\255'
  local found, looked, last = {}, 0, nil
  while true do
    local members = redis.call('ZRANGE', key, from, upto, 'BYLEX', 'LIMIT', 0, CHUNK)
    for _, m in ipairs(members) do
      local rest = string.sub(m, 33)
      local at = string.find(rest, NUL, 1, true)
      local peer = string.sub(rest, 1, at - 1)
      if #found >= wanted and peer ~= last then
        table.sort(found, by_key)
        while #found > wanted do table.remove(found) end
        return found, looked
      end
      looked = looked + 1
      if live(peer) then
        local id = string.sub(rest, at + 1)
        local name = redis.call('HGET', B .. 'I', id)
        local held = holding(B .. 'h:' .. id, peer)
        if held and not (has_after and peer == ap and name <= an) then
          found[#found + 1] = {peer .. NUL .. name, peer, name, string.sub(held, #peer + 2)}
          last = peer
        end
      end
    end
    if #members < CHUNK then break end
    from = '(' .. members[#members]
  end
  table.sort(found, by_key)
  while #found > wanted do table.remove(found) end
  return found, looked
end

local function exact(name)
  local found = {}
  local id = redis.call('HGET', B .. 'N', name)
  if not id then return found, 0 end
  local hk = B .. 'h:' .. id
  local from = '-'
  if has_after then
    if name > an then from = '[' .. ap .. NUL else from = '[' .. ap .. '\1' end
  end
  while #found < wanted do
    local members = redis.call('ZRANGE', hk, from, '+', 'BYLEX', 'LIMIT', 0, CHUNK)
    for _, m in ipairs(members) do
      local at = string.find(m, NUL, 1, true)
      local peer = string.sub(m, 1, at - 1)
      if live(peer) then
        found[#found + 1] = {'', peer, name, string.sub(m, at + 1)}
        if #found == wanted then break end
      end
    end
    if #members < CHUNK then break end
    from = '(' .. members[#members]
  end
  return found, redis.call('ZCARD', hk)
end

-- The buckets to scan and check, and how many names the search would check: the smallest
-- bucket of the query first, then the smallest of each other word (the buckets of one word
-- hold much the same names), then the rest; nil when a word cannot match at all.
local function plan()
  local firsts, rest = {}, {}
  for _, word in ipairs(words) do
    local sized = {}
    for _, k in ipairs(buckets(word)) do
      local n, bitmap = bucket_size(k)
      if n == 0 then return nil, 0 end
      sized[#sized + 1] = {n, k, bitmap}
    end
    table.sort(sized, function(a, b) return a[1] < b[1] end)
    for i, b in ipairs(sized) do
      if i == 1 then firsts[#firsts + 1] = b else rest[#rest + 1] = b end
    end
  end
  if #firsts == 0 then return firsts, redis.call('HLEN', B .. 'I') end
  local by_size = function(a, b) return a[1] < b[1] end
  table.sort(firsts, by_size)
  table.sort(rest, by_size)
  for _, b in ipairs(rest) do firsts[#firsts + 1] = b end
  return firsts, firsts[1][1]
end

-- The ids of bucket b (a plan entry).
local function bucket_ids(b)
  if b[3] then return bitmap_ids(redis.call('GET', B .. 'G:' .. b[2])) end
  return redis.call('SMEMBERS', B .. 'g:' .. b[2])
end

-- The matches among the names of `ids` (default: the first bucket's), once the buckets from
-- `next` to the fifth (default: the second) struck the ids they lack.
local function narrow(sized, ids, next)
  if ids == nil then
    if #sized == 0 then ids = redis.call('HKEYS', B .. 'I') else ids = bucket_ids(sized[1]) end
  end
  -- Each next bucket (the first few) strikes the ids it lacks: a bitmap read once, a set a
  -- thousand ids per call.
  for j = next or 2, math.min(#sized, 5) do
    local kept = {}
    if sized[j][3] then
      local bits = redis.call('GET', B .. 'G:' .. sized[j][2])
      for _, id in ipairs(ids) do
        if bitmap_has(bits, id) then kept[#kept + 1] = id end
      end
    else
      local key = B .. 'g:' .. sized[j][2]
      for i = 1, #ids, 1000 do
        local part = {unpack(ids, i, math.min(i + 999, #ids))}
        local here = redis.call('SMISMEMBER', key, unpack(part))
        for k, yes in ipairs(here) do
          if yes == 1 then kept[#kept + 1] = part[k] end
        end
      end
    end
    ids = kept
  end
  local found, examined = {}, 0
  for i = 1, #ids, 1000 do
    local part = {unpack(ids, i, math.min(i + 999, #ids))}
    local names = redis.call('HMGET', B .. 'I', unpack(part))
    for k, name in ipairs(names) do
      if name and matches(lowered(part[k], name)) then
        examined = examined + holders(part[k], name, found)
      end
    end
  end
  table.sort(found, by_key)
  while #found > wanted do table.remove(found) end
  return found, examined
end

local function walk()
  local found, examined = {}, 0
  local from = has_after and ('[' .. ap) or '-'
  while true do
    local peers = redis.call('ZRANGE', B .. 'P', from, '+', 'BYLEX', 'LIMIT', 0, 64)
    for _, peer in ipairs(peers) do
      if live(peer) then
        local fk = B .. 'f:' .. peer
        local first = '-'
        if has_after and peer == ap then first = '(' .. an end
        while true do
          local names = redis.call('ZRANGE', fk, first, '+', 'BYLEX', 'LIMIT', 0, CHUNK)
          for _, name in ipairs(names) do
            examined = examined + 1
            local low
            if string.find(name, '[\128-\255]') then
              low = lowered(redis.call('HGET', B .. 'N', name), name)
            else
              low = string.lower(name)
            end
            if matches(low) then
              found[#found + 1] = {'', peer, name, record_of(peer, name)}
              if #found == wanted then return found, nil, examined end
            end
            if examined >= budget then return found, {peer, name}, examined end
          end
          if #names < CHUNK then break end
          first = '(' .. names[#names]
        end
      end
    end
    if #peers < 64 then break end
    from = '(' .. peers[#peers]
  end
  return found, nil, examined
end

-- The ids in every one of the query's first few buckets when they are all bitmaps and hold
-- at most `most` ids together; else nil. Words that are each common may still be rare
-- together: then the search is narrow after all.
local function intersected(sized)
  local maps = {}
  for j = 1, math.min(#sized, 5) do
    if not sized[j][3] then return nil end
    maps[#maps + 1] = redis.call('GET', B .. 'G:' .. sized[j][2])
  end
  local length = #maps[1]
  for _, bits in ipairs(maps) do length = math.min(length, #bits) end
  local ids, band = {}, bit.band
  for at = 1, length do
    local byte = string.byte(maps[1], at)
    for j = 2, #maps do
      if byte == 0 then break end
      byte = band(byte, string.byte(maps[j], at))
    end
    if byte ~= 0 then
      for b = 7, 0, -1 do
        if byte >= 2 ^ b then
          byte = byte - 2 ^ b
          ids[#ids + 1] = tostring((at - 1) * 8 + 7 - b)
        end
      end
      if #ids > most then return nil end
    end
  end
  return ids
end

local found, examined, resume = {}, 0, nil
if ARGV[3] == 'n' then
  found, examined = exact(ARGV[11])
elseif ARGV[3] == 'S' or ARGV[3] == 'T' then
  found, examined = content(ARGV[3], ARGV[11])
else
  local sized, estimate = plan()
  if sized then
    local ids = nil
    if estimate > most and #sized > 1 then ids = intersected(sized) end
    if estimate <= most then
      found, examined = narrow(sized)
    elseif ids then
      found, examined = narrow(sized, ids, math.min(#sized, 5) + 1)
    elseif ARGV[4] ~= '1' then
      return {e, 'BROAD'}
    else
      found, resume, examined = walk()
    end
  end
end

local m = redis.call('HMGET', M, 'gen', 'gather')
local gather = tonumber(m[2]) or 0
local due = -1
-- Leases that ran out already count as gone in this answer: the next one to run out does not.
local first = redis.call('ZRANGE', B .. 'L', '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
if first[2] then due = tonumber(first[2]) end
if gather > now and (due < 0 or gather < due) then due = gather end
local results, seen, peers = {}, {}, {}
for _, f in ipairs(found) do
  results[#results + 1] = f[2]
  results[#results + 1] = f[3]
  results[#results + 1] = f[4]
  if not seen[f[2]] then
    seen[f[2]] = true
    local p = redis.call('HMGET', B .. 'p:' .. f[2], 'cert', 'reach')
    peers[#peers + 1] = f[2]
    peers[#peers + 1] = p[1] or ''
    peers[#peers + 1] = p[2] or '0'
  end
end
return {e, 'OK', gather > now and 1 or 0, examined, m[1] or '0', due,
  resume and resume[1] or '', resume and resume[2] or '', results, peers}
