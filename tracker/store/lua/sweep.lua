-- Sweep: depart up to ARGV[3] peers whose lease ran out, drop up to ARGV[4] files of
-- departed peers, oldest first, and report every expired peer whose files are all gone.
-- Any number of trackers may sweep at once: each step is atomic, and each peer is reported
-- by the one sweep that drops its last file. ARGV: now, lease, lease slice, drop slice.
local now, lease = now_ms(ARGV[1]), tonumber(ARGV[2])
local e = epoch(now, lease)
local departed = sweep_leases(now, tonumber(ARGV[3]))
local budget = tonumber(ARGV[4])
local reports = {}
while budget > 0 do
  local entry = redis.call('LINDEX', B .. 'D', 0)
  if not entry then break end
  local dropped, report = drop_departed(entry, budget)
  budget = budget - dropped
  if report then reports[#reports + 1] = report end
  if dropped == 0 and not report and redis.call('LINDEX', B .. 'D', 0) == entry then break end
end
flush_buckets()
while true do
  local told = redis.call('LPOP', B .. 'R')
  if not told then break end
  reports[#reports + 1] = split(told, NUL)
end
local more = 0
if redis.call('EXISTS', B .. 'D') == 1 then more = 1 end
local next_due = redis.call('ZRANGE', B .. 'L', '-inf', now, 'BYSCORE', 'LIMIT', 0, 1)
if #next_due > 0 then more = 1 end
return {e, more, departed, reports}
