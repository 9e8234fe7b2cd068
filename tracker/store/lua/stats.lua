-- Stats: registrations, entries (departed peers' not yet dropped too) and distinct names.
local m = redis.call('HMGET', M, 'peers', 'files')
return {tonumber(m[1]) or 0, tonumber(m[2]) or 0, redis.call('HLEN', B .. 'N')}
