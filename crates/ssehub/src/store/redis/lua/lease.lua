-- Renews one node's lease and lists the nodes holding one, timed by Redis' clock so that the
-- nodes' clocks never matter. Not about history: no prologue, no identity check.
--   KEYS[1] leases: hash node -> when its lease runs out (unix ms, Redis time)
--   KEYS[2] lease clock: hash {since, last}: since when renewals have gone on without a break
--           of half a time to live, and when the last one was
--   ARGV[1] node, ARGV[2] time to live in ms
-- Replies {lapsed, conclusive, live node...} (see `Leases` in store/lease.rs).
local leases, clock = KEYS[1], KEYS[2]
local node, ttl = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Within a break nobody renewed (Redis away, restarted, flushed), live nodes' leases ran out
-- too: absence proves nothing until every live node had a whole time to live to renew.
local c = redis.call('HMGET', clock, 'since', 'last')
local since, last = tonumber(c[1]), tonumber(c[2])
if not since or not last or now - last > ttl / 2 then
  since = now
end
redis.call('HSET', clock, 'since', since, 'last', now)

local previous = tonumber(redis.call('HGET', leases, node))
local lapsed = 0
if not previous or previous <= now then
  lapsed = 1
end
redis.call('HSET', leases, node, now + ttl)

local reply = {lapsed, 0}
if now - since >= ttl then
  reply[2] = 1
end
local all = redis.call('HGETALL', leases)
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) > now then
    table.insert(reply, all[i])
  else
    redis.call('HDEL', leases, all[i])
  end
end
return reply
