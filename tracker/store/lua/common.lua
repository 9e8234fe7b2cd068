-- What every script of the Redis store shares: the keys of one shard, its clock, its epoch,
-- the lease sweep and the steps that add and drop entries. Each script is this file followed
-- by its own, so each call is one atomic step on the server.
--
-- KEYS[1] is the shard's meta hash, "{<prefix>:<shard>}:m"; every other key of the shard is
-- named from it, so all share one hash tag (one Redis Cluster slot):
--   m        hash: epoch, gather (ms), gen, peers, files, nbytes, nextid, dseq
--   L        zset: peer id -> lease deadline (ms); membership is registration
--   P        zset: registered peer ids (score 0, in byte order): the broad search's walk
--   p:<peer> hash: tok, id (identity), cert, src, reach, local, n (files), nb (name bytes)
--   f:<peer> zset: the peer's file names (score 0, in byte order)
--   N        hash: name -> name id;   I: name id -> name;   W: name id -> lowered name, only
--            where it differs from string.lower(name) (names that are not ASCII)
--   F        set:  name ids free for reuse (so that ids, and the bitmaps below, stay small)
--   h:<id>   zset: "<peer>\0<record>" of every holder of the name (score 0)
--   g:<b>    set:  ids of the names with a trigram in bucket b of 65,536, while they are at
--            most SMALL_BUCKET (an intset: 4 bytes an id); past that, G:<b> instead, a bitmap
--            of the ids (one bit per id the shard has: far less than a set's 50 bytes an id)
--   Ap Af Ab hash: source address -> registrations, files, name bytes of its live peers
--   D        list: "<seq> <expired> <peer>" of departed peers whose files are still being
--            dropped, oldest first; d: peer -> seq; c: seq -> the last name dropped;
--            x:<seq>: the departed peer's file names
--   R        list: expired peers whose files a Join dropped, for the sweep to report
--   S:<b>    zset: "<sha256><peer>\0<name id>" (the sha256 raw, 32 bytes; score 0) of every
--            holder's file whose sha256 starts with the two bytes b (0 to 65535): search by
--            content; T:<b> the same by pieces root, for the files that have one

local M = KEYS[1]
local B = string.sub(M, 1, -2)
local NUL = '\0'
local SMALL_BUCKET = 512

local function now_ms(given)
  local n = tonumber(given)
  if n >= 0 then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The shard's epoch: made (with a gathering window of one lease) when the shard has none,
-- because it is new or its data was lost.
local function epoch(now, lease)
  local e = redis.call('HGET', M, 'epoch')
  if e then return e end
  local t = redis.call('TIME')
  e = t[1] .. '.' .. t[2]
  redis.call('HSET', M, 'epoch', e, 'gather', now + lease)
  return e
end

local function changed()
  redis.call('HINCRBY', M, 'gen', 1)
end

-- The buckets of the byte trigrams of a lowered name or word.
local function buckets(low)
  local seen, list = {}, {}
  for i = 1, #low - 2 do
    local a, b, c = string.byte(low, i, i + 2)
    local h = ((a * 65536 + b * 256 + c) * 165902771) % 4294967296
    local k = math.floor(h / 65536)
    if not seen[k] then
      seen[k] = true
      list[#list + 1] = k
    end
  end
  return list
end

-- The trigram buckets: a set of ids while small, a bitmap once large. A call gathers the
-- ids it adds and removes, bucket by bucket, and writes each bucket once at its end
-- (flush_buckets): removals first, since an id freed in the call may be taken again in it.
local adding, removing = {}, {}

local function bucket_add(k, id)
  local ids = adding[k]
  if not ids then
    ids = {}
    adding[k] = ids
  end
  ids[#ids + 1] = id
end

local function bucket_remove(k, id)
  local ids = removing[k]
  if not ids then
    ids = {}
    removing[k] = ids
  end
  ids[#ids + 1] = id
end

-- Set or clear the bits of `ids` in `bitmap`, a few hundred per call.
local function set_bits(bitmap, ids, value)
  for i = 1, #ids, 300 do
    local args = {}
    for j = i, math.min(i + 299, #ids) do
      args[#args + 1] = 'SET'
      args[#args + 1] = 'u1'
      args[#args + 1] = ids[j]
      args[#args + 1] = value
    end
    redis.call('BITFIELD', bitmap, unpack(args))
  end
end

-- Add or remove (SADD, SREM) `ids` to the set `key`, a thousand per call.
local function set_members(command, key, ids)
  for i = 1, #ids, 1000 do
    redis.call(command, key, unpack(ids, i, math.min(i + 999, #ids)))
  end
end

local function flush_buckets()
  for k, ids in pairs(removing) do
    local bitmap = B .. 'G:' .. k
    if redis.call('EXISTS', bitmap) == 1 then
      set_bits(bitmap, ids, 0)
    else
      set_members('SREM', B .. 'g:' .. k, ids)
    end
  end
  for k, ids in pairs(adding) do
    local bitmap = B .. 'G:' .. k
    if redis.call('EXISTS', bitmap) == 1 then
      set_bits(bitmap, ids, 1)
    else
      local set = B .. 'g:' .. k
      set_members('SADD', set, ids)
      if redis.call('SCARD', set) > SMALL_BUCKET then
        set_bits(bitmap, redis.call('SMEMBERS', set), 1)
        redis.call('DEL', set)
      end
    end
  end
  adding, removing = {}, {}
end

-- How many ids bucket k holds, and whether it is a bitmap (nil: the bucket is empty).
local function bucket_size(k)
  local n = redis.call('SCARD', B .. 'g:' .. k)
  if n > 0 then return n, false end
  local bitmap = B .. 'G:' .. k
  if redis.call('EXISTS', bitmap) == 0 then return 0, false end
  return redis.call('BITCOUNT', bitmap), true
end

-- The ids set in the bitmap `bits` (a string), in order.
local function bitmap_ids(bits)
  local ids = {}
  for at = 1, #bits do
    local byte = string.byte(bits, at)
    if byte ~= 0 then
      for bit = 7, 0, -1 do
        if byte >= 2 ^ bit then
          byte = byte - 2 ^ bit
          ids[#ids + 1] = tostring((at - 1) * 8 + 7 - bit)
        end
      end
    end
  end
  return ids
end

local function bitmap_has(bits, id)
  local n = tonumber(id)
  local byte = string.byte(bits, math.floor(n / 8) + 1) or 0
  return math.floor(byte / 2 ^ (7 - n % 8)) % 2 == 1
end

local function lowered(id, name)
  return redis.call('HGET', B .. 'W', id) or string.lower(name)
end

local function usage(src, peers, files, nb)
  if peers ~= 0 then
    if redis.call('HINCRBY', B .. 'Ap', src, peers) <= 0 then
      redis.call('HDEL', B .. 'Ap', src)
      redis.call('HDEL', B .. 'Af', src)
      redis.call('HDEL', B .. 'Ab', src)
      return
    end
  end
  if files ~= 0 then redis.call('HINCRBY', B .. 'Af', src, files) end
  if nb ~= 0 then redis.call('HINCRBY', B .. 'Ab', src, nb) end
end

-- The member of h:<id> that is `peer`'s, or nil.
local function holding(hk, peer)
  local m = redis.call('ZRANGE', hk, '[' .. peer .. NUL, '(' .. peer .. '\1', 'BYLEX', 'LIMIT', 0, 1)
  return m[1]
end

-- The content index's keys and members for `peer`'s `record` (size, sha256 and, if any,
-- pieces root, raw) of name id `id`: {key, member} for the sha256, then for the root.
local NO_ROOT = string.rep(NUL, 32)
local function content_members(peer, id, record)
  local sha = string.sub(record, 9, 40)
  local out = {{B .. 'S:' .. (string.byte(sha, 1) * 256 + string.byte(sha, 2)), sha .. peer .. NUL .. id}}
  local root = string.sub(record, 41, 72)
  if #root == 32 and root ~= NO_ROOT then
    out[2] = {B .. 'T:' .. (string.byte(root, 1) * 256 + string.byte(root, 2)), root .. peer .. NUL .. id}
  end
  return out
end

local function content_add(peer, id, record)
  for _, km in ipairs(content_members(peer, id, record)) do redis.call('ZADD', km[1], 0, km[2]) end
end

local function content_remove(peer, id, record)
  for _, km in ipairs(content_members(peer, id, record)) do redis.call('ZREM', km[1], km[2]) end
end

-- Forget that `peer` holds `name` (it does); a name nobody holds any more goes. Returns the
-- bytes of distinct names that went.
local function drop_entry(peer, name)
  local id = redis.call('HGET', B .. 'N', name)
  local hk = B .. 'h:' .. id
  local held = holding(hk, peer)
  redis.call('ZREM', hk, held)
  content_remove(peer, id, string.sub(held, #peer + 2))
  if redis.call('EXISTS', hk) == 1 then return 0 end
  local low = lowered(id, name)
  for _, k in ipairs(buckets(low)) do bucket_remove(k, id) end
  redis.call('HDEL', B .. 'N', name)
  redis.call('HDEL', B .. 'I', id)
  redis.call('HDEL', B .. 'W', id)
  redis.call('SADD', B .. 'F', id)
  return #name
end

-- Record that `peer` holds `name` with `record`; returns (entries added, distinct bytes added).
local function put_entry(peer, name, low, record)
  local id = redis.call('HGET', B .. 'N', name)
  local member = peer .. NUL .. record
  if id then
    local hk = B .. 'h:' .. id
    local old = holding(hk, peer)
    if old == member then return 0, 0 end
    if old then
      redis.call('ZREM', hk, old)
      redis.call('ZADD', hk, 0, member)
      content_remove(peer, id, string.sub(old, #peer + 2))
      content_add(peer, id, record)
      return 0, 0
    end
    redis.call('ZADD', hk, 0, member)
    content_add(peer, id, record)
    return 1, 0
  end
  id = redis.call('SPOP', B .. 'F') or redis.call('HINCRBY', M, 'nextid', 1)
  redis.call('HSET', B .. 'N', name, id)
  redis.call('HSET', B .. 'I', id, name)
  if low ~= '' and low ~= string.lower(name) then
    redis.call('HSET', B .. 'W', id, low)
  else
    low = string.lower(name)
  end
  for _, k in ipairs(buckets(low)) do bucket_add(k, id) end
  redis.call('ZADD', B .. 'h:' .. id, 0, member)
  content_add(peer, id, record)
  return 1, #name
end

-- Add names to the zset `key` (score 0), a thousand per call.
local function zadd_names(key, names)
  local args = {}
  for i = 1, #names do
    args[#args + 1] = 0
    args[#args + 1] = names[i]
    if #args >= 2000 or i == #names then
      redis.call('ZADD', key, unpack(args))
      args = {}
    end
  end
end

-- Take a registration out: its files go later, a slice at a time (departed), and an expired
-- one is reported once they are gone.
local function depart(peer, expired)
  local pk = B .. 'p:' .. peer
  local r = redis.call('HMGET', pk, 'src', 'n', 'nb')
  local n = tonumber(r[2]) or 0
  redis.call('DEL', pk)
  redis.call('ZREM', B .. 'L', peer)
  redis.call('ZREM', B .. 'P', peer)
  redis.call('HINCRBY', M, 'peers', -1)
  if r[1] then usage(r[1], -1, -n, -(tonumber(r[3]) or 0)) end
  if n > 0 or expired then
    local seq = redis.call('HINCRBY', M, 'dseq', 1)
    if n > 0 then redis.call('RENAME', B .. 'f:' .. peer, B .. 'x:' .. seq) end
    redis.call('RPUSH', B .. 'D', seq .. ' ' .. (expired and '1' or '0') .. ' ' .. peer)
    redis.call('HSET', B .. 'd', peer, seq)
  end
  changed()
end

-- Drop up to `budget` files of the departed peer at the head of D. Returns the files dropped
-- and, when it is finished and had expired, {peer, names...} to report.
local function drop_departed(entry, budget)
  local seq, expired, peer = string.match(entry, '^(%d+) (%d) (.*)$')
  local x = B .. 'x:' .. seq
  local cursor = redis.call('HGET', B .. 'c', seq)
  local from = cursor and ('(' .. cursor) or '-'
  local names = redis.call('ZRANGE', x, from, '+', 'BYLEX', 'LIMIT', 0, budget)
  local nbytes = 0
  for _, name in ipairs(names) do
    nbytes = nbytes + drop_entry(peer, name)
  end
  if #names > 0 then redis.call('HINCRBY', M, 'files', -#names) end
  if nbytes > 0 then redis.call('HINCRBY', M, 'nbytes', -nbytes) end
  if #names == budget and budget > 0 then
    redis.call('HSET', B .. 'c', seq, names[#names])
    return #names, nil
  end
  local report = nil
  if expired == '1' then
    report = redis.call('ZRANGE', x, 0, -1)
    table.insert(report, 1, peer)
  end
  redis.call('DEL', x)
  redis.call('HDEL', B .. 'c', seq)
  redis.call('LREM', B .. 'D', 1, entry)
  if redis.call('HGET', B .. 'd', peer) == seq then redis.call('HDEL', B .. 'd', peer) end
  return #names, report
end

-- Drop at once what is left of departed `peer`'s files, before it joins again.
local function finish_departed(peer)
  local seq = redis.call('HGET', B .. 'd', peer)
  if not seq then return end
  for _, entry in ipairs(redis.call('LRANGE', B .. 'D', 0, -1)) do
    if string.match(entry, '^(%d+) ') == seq then
      local _, report = drop_departed(entry, 1000000)
      if report then redis.call('RPUSH', B .. 'R', table.concat(report, NUL)) end
      return
    end
  end
end

-- Depart up to `slice` peers whose lease ran out.
local function sweep_leases(now, slice)
  local due = redis.call('ZRANGE', B .. 'L', '-inf', now, 'BYSCORE', 'LIMIT', 0, slice)
  for _, peer in ipairs(due) do depart(peer, true) end
  return #due
end

-- The registration of `peer` if its lease holds at `now`: {src|false, n, nb, tok, id, reach};
-- one whose lease ran out departs now and is nil.
local function registered(peer, now)
  local deadline = redis.call('ZSCORE', B .. 'L', peer)
  if not deadline then return nil end
  if tonumber(deadline) <= now then
    depart(peer, true)
    return nil
  end
  return redis.call('HMGET', B .. 'p:' .. peer, 'src', 'n', 'nb', 'tok', 'id', 'reach')
end

local function holds_against(id, reach, identity, proven)
  if id == identity then return false end
  return reach == '1' or not proven or identity == ''
end

-- The first limit passed, in the order of tracker/limits.py: per address, then the whole
-- index. `limits` holds the six values in that order; `added` is {peers, files, name bytes}.
-- Returns {'LIMIT', position in limits, count after} or nil.
local function over_address(src, limits, added)
  local have = {
    tonumber(redis.call('HGET', B .. 'Ap', src)) or 0,
    tonumber(redis.call('HGET', B .. 'Af', src)) or 0,
    tonumber(redis.call('HGET', B .. 'Ab', src)) or 0,
  }
  for i = 1, 3 do
    if added[i] > 0 and have[i] + added[i] > limits[i] then
      return {'LIMIT', i, have[i] + added[i]}
    end
  end
  return nil
end

local function over_index(limits, added)
  local m = redis.call('HMGET', M, 'peers', 'files', 'nbytes')
  for i = 1, 3 do
    local have = tonumber(m[i]) or 0
    if added[i] > 0 and have + added[i] > limits[i + 3] then
      return {'LIMIT', i + 3, have + added[i]}
    end
  end
  return nil
end

local function split(text, sep)
  local out = {}
  if text == '' then return out end
  local start = 1
  while true do
    local at = string.find(text, sep, start, true)
    if not at then
      out[#out + 1] = string.sub(text, start)
      return out
    end
    out[#out + 1] = string.sub(text, start, at - 1)
    start = at + #sep
  end
end

-- Files as Python packs them: per file a 2-byte name length, the name, a 2-byte length of its
-- lowered form (0: string.lower does), that form, a 1-byte record length and the record.
local function unpack_files(blob)
  local names, lows, records = {}, {}, {}
  local at = 1
  while at <= #blob do
    local a, b = string.byte(blob, at, at + 1)
    local len = a * 256 + b
    names[#names + 1] = string.sub(blob, at + 2, at + 1 + len)
    at = at + 2 + len
    a, b = string.byte(blob, at, at + 1)
    len = a * 256 + b
    lows[#lows + 1] = string.sub(blob, at + 2, at + 1 + len)
    at = at + 2 + len
    len = string.byte(blob, at)
    records[#records + 1] = string.sub(blob, at + 1, at + len)
    at = at + 1 + len
  end
  return names, lows, records
end

local function limits_of(text)
  local out = {}
  for _, v in ipairs(split(text, ',')) do out[#out + 1] = tonumber(v) end
  return out
end
