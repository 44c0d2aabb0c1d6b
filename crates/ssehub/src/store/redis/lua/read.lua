-- ARGV[2] the epoch the caller follows, ARGV[3] cursor kind: 'earliest', 'id', 'seq',
-- 'stale' (a position from before a history change: replay after ARGV[4], reported unknown),
-- or 'at' (the entry with id ARGV[4] itself, for `get`), ARGV[4] its value, ARGV[5] limit,
-- ARGV[6] a byte bound (the read stops once its updates reach it, after at least one). The
-- live feed adds (seq, id) pairs of entries it delivered, newest first, to learn whether
-- history still holds what it delivered.
-- Replies {'epoch', epoch, base, head} when the caller follows another history;
-- {'diverged', epoch, base, head, agreed} when the newest pair is no longer in history
-- (agreed: the newest pair that is, or a guess below all of them); else
-- {'ok', epoch, base, head, first, found, more, seq, update, seq, update, ...} with up to
-- limit entries, more = 1 when further entries follow.
local epoch, base, head = identity()
if epoch ~= ARGV[2] then
  return {'epoch', epoch, base, head}
end
local first = first_seq()

if #ARGV > 6 then
  local agreed = nil
  local lowest = nil
  for i = 7, #ARGV, 2 do
    local s = tonumber(ARGV[i])
    lowest = s
    if s <= head then
      -- An entry pruned since it was delivered cannot be compared; pruning is no divergence.
      if first == 0 or s < first or tonumber(redis.call('HGET', ids, ARGV[i + 1])) == s then
        agreed = s
        break
      end
    end
  end
  if agreed ~= tonumber(ARGV[7]) then
    if agreed == nil then
      agreed = math.max(lowest - 1, 0)
    end
    return {'diverged', epoch, base, head, math.min(agreed, head)}
  end
end

local kind, value, limit, max_bytes = ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local found, after = 1, 0
if kind == 'id' then
  local s = tonumber(redis.call('HGET', ids, value))
  if s and first > 0 and s >= first then
    after = s
  else
    found = 0
  end
elseif kind == 'seq' then
  local s = tonumber(value)
  -- Pruning only removes the oldest entries, so a seq is in history exactly when nothing
  -- between it and the oldest retained entry is gone.
  if s <= head and (s == head or (first > 0 and s + 1 >= first)) then
    after = s
  else
    found = 0
  end
elseif kind == 'at' then
  local s = tonumber(redis.call('HGET', ids, value))
  if s and first > 0 and s >= first then
    after = s - 1
    limit = 1
  else
    return {'ok', epoch, base, head, first, 0, 0}
  end
elseif kind == 'stale' then
  found = 0
  after = tonumber(value)
end

local out = {'ok', epoch, base, head, first, found, 0}
local more_at = #out
-- In small batches: the byte bound may end the read long before `limit` large entries.
local taken, bytes, from = 0, 0, stream_id(after + 1)
while true do
  local batch = redis.call('XRANGE', log, from, '+', 'COUNT', 16)
  for _, e in ipairs(batch) do
    if taken == limit or (taken > 0 and bytes >= max_bytes) then
      out[more_at] = 1
      return out
    end
    local seq = seq_of(e[1])
    local u = fields(e[2]).u or ''
    out[#out + 1] = seq
    out[#out + 1] = u
    taken = taken + 1
    bytes = bytes + #u
    from = stream_id(seq + 1)
  end
  if #batch < 16 then
    return out
  end
end
