-- ARGV[2] the epoch the caller follows, ARGV[3] the highest seq it has seen in that epoch,
-- ARGV[4] id, ARGV[5] published_at_ms, ARGV[6] encoded update.
-- Replies {status, epoch, base, seq}: 'ok' with the new seq; 'duplicate'; 'epoch' (the
-- history is not the one the caller follows); 'behind' (the history lost entries the caller
-- saw, e.g. Redis restarted from an older AOF): nothing is written in the last three cases.
local epoch, base, head = identity()
if epoch ~= ARGV[2] then
  return {'epoch', epoch, base, head}
end
if head < tonumber(ARGV[3]) then
  return {'behind', epoch, base, head}
end
local id = ARGV[4]
local existing = tonumber(redis.call('HGET', ids, id))
if existing then
  local first = first_seq()
  if first > 0 and existing >= first then
    return {'duplicate', epoch, base, head}
  end
end
local seq = head + 1
redis.call('XADD', log, stream_id(seq), 'i', id, 't', ARGV[5], 'u', ARGV[6])
redis.call('HSET', meta, 'seq', seq)
redis.call('HSET', ids, id, seq)
return {'ok', epoch, base, seq}
