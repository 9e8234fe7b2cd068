-- Hello: whether this server compares and lowercases strings byte by byte in Lua, as the
-- scripts need (Redis sets LC_COLLATE from its environment, and Lua compares with strcoll),
-- and the shard's epoch, made now if it has none: {1 or 0, epoch, '1' if made now}.
-- ARGV: now, lease.
local ok = ('B' < 'a') and ('.' < '0') and ('Z' < '_') and ('a' .. NUL .. 'z' < 'a\1')
  and ('10.0.0.1:80' < '100.0.0.1:80') and ('z' < '\195\137') and ('a-b' < 'aa')
  and string.lower('\195\137Ab') == '\195\137ab'
local made = redis.call('HEXISTS', M, 'epoch') == 0
local e = epoch(now_ms(ARGV[1]), tonumber(ARGV[2]))
return {ok and 1 or 0, e, made and '1' or '0'}
