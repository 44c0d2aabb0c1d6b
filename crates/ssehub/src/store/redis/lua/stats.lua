-- Replies {epoch, base, head, first, retained}. Declared as a writing script, so Redis refuses
-- it up front where appends would be refused too (a read-only replica, out of memory): its
-- success is the store's `writable`.
local epoch, base, head = identity()
return {epoch, base, head, first_seq(), redis.call('XLEN', log)}
