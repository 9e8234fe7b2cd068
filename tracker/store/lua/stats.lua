-- Stats: registrations, entries (departed peers' not yet dropped too) and distinct names,
-- once the registrations whose lease ran out have departed. ARGV: now, lease slice.
sweep_leases(now_ms(ARGV[1]), tonumber(ARGV[2]))
local m = redis.call('HMGET', M, 'peers', 'files')
return {tonumber(m[1]) or 0, tonumber(m[2]) or 0, redis.call('HLEN', B .. 'N')}
