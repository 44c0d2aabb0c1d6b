-- Shared by every script (the Rust side prepends it). Keys, all in one hash slot:
--   KEYS[1] meta: hash {epoch, base, seq}: the history's identity, the seq it started from,
--           the last seq assigned (kept apart from the log so pruning everything keeps it)
--   KEYS[2] log:  stream; entry id "<seq>-0", fields i (update id), t (published_at_ms),
--           u (the update, encoded by store/codec.rs)
--   KEYS[3] ids:  hash update id -> seq, for Last-Event-ID and duplicate ids
-- ARGV[1] is always a fresh random epoch, used only by a history that has none yet.
local meta, log, ids = KEYS[1], KEYS[2], KEYS[3]

local function seq_of(stream_id)
  return tonumber(string.match(stream_id, '^(%d+)'))
end

local function stream_id(seq)
  return string.format('%d-0', seq)
end

local function fields(kv)
  local t = {}
  for i = 1, #kv, 2 do
    t[kv[i]] = kv[i + 1]
  end
  return t
end

-- The history's epoch, base and head. A history without an epoch is new, or lost its data
-- (FLUSHALL, a restart without persistence, failover to an empty replica): it gets the
-- caller's fresh epoch here, and numbering continues after whatever the log still holds, so
-- stream ids keep increasing.
local function identity()
  local m = redis.call('HMGET', meta, 'epoch', 'base', 'seq')
  if m[1] then
    return m[1], tonumber(m[2]), tonumber(m[3])
  end
  local top = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
  local head = 0
  if #top > 0 then
    head = seq_of(top[1][1])
  end
  redis.call('HSET', meta, 'epoch', ARGV[1], 'base', head, 'seq', head)
  return ARGV[1], head, head
end

-- Seq of the oldest retained entry, 0 when the log is empty.
local function first_seq()
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  if #first > 0 then
    return seq_of(first[1][1])
  end
  return 0
end
