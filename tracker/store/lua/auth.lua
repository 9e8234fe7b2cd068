-- The registration of ARGV[3] if ARGV[4] is its token: {reg} or an answer to return at once.
local function authenticated(now)
  local reg = registered(ARGV[3], now)
  if not reg then return nil, 'UNKNOWN' end
  if reg[4] ~= ARGV[4] then return nil, 'TOKEN' end
  return reg, nil
end
