-- ARGV[2] the epoch the caller follows, then (seq, id) pairs of entries to remove from
-- anywhere in the log (retention of a topic prefix), with their index entries where these
-- still point at them. Replies the number removed; 0 when the caller follows another history
-- (it learns of that on its next read).
local epoch = identity()
if epoch ~= ARGV[2] then
  return 0
end
local removed = 0
for i = 3, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  removed = removed + redis.call('XDEL', log, stream_id(seq))
  if tonumber(redis.call('HGET', ids, ARGV[i + 1])) == seq then
    redis.call('HDEL', ids, ARGV[i + 1])
  end
end
return removed
