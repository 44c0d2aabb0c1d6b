-- ARGV[2] keep at most this many entries (-1: no limit), ARGV[3] remove entries published
-- before this time in ms (-1: no limit), ARGV[4] most entries to remove in this call, so a
-- large backlog is trimmed in steps that each block Redis briefly.
-- Removes from the oldest end only, with the ids of the removed entries. Replies
-- {removed, done}: done is 1 when nothing more is due.
identity()
local max_events, cutoff, chunk = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local excess = 0
if max_events >= 0 then
  excess = math.max(0, redis.call('XLEN', log) - max_events)
end
-- By count alone, the entries to remove are known: read no more of them than that.
local count = chunk
if cutoff < 0 then
  count = math.min(chunk, excess)
end
if count == 0 then
  return {0, 1}
end
local removed, last = 0, nil
local done = 1
for _, e in ipairs(redis.call('XRANGE', log, '-', '+', 'COUNT', count)) do
  local f = fields(e[2])
  local at = tonumber(f.t)
  -- An entry without a readable time counts as too old: kept, it would stop age pruning.
  local too_old = cutoff >= 0 and (at == nil or at < cutoff)
  if removed >= excess and not too_old then
    break
  end
  local seq = seq_of(e[1])
  -- Only drop the index entry if it still points here.
  if f.i and tonumber(redis.call('HGET', ids, f.i)) == seq then
    redis.call('HDEL', ids, f.i)
  end
  removed = removed + 1
  last = seq
end
if last then
  redis.call('XTRIM', log, 'MINID', stream_id(last + 1))
end
if removed == chunk then
  done = 0
end
return {removed, done}
