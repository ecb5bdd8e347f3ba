//! The Lua scripts of [`RedisInbox`](super::RedisInbox): each method's check
//! and writes run as one script, so they are atomic (and written to the AOF
//! as one transaction).
//!
//! Every script takes `ARGV[1]` the key prefix and `ARGV[2]` the consumer
//! group, and derives its key names from the prefix (see the key layout in
//! the type's docs). Optional strings are passed as `""` for none and `"="`
//! followed by the text for some, so an empty text is still some. Tokens are
//! compared as strings: Lua numbers are doubles.

use std::sync::LazyLock;

use ::redis::Script;

/// Helpers shared by every script.
const PRELUDE: &str = r"
local P, GROUP = ARGV[1], ARGV[2]
local STREAM = P .. 'stream'
local LEASES = P .. 'leases'
local STATES = {'ready', 'leased', 'retry', 'dead', 'done'}
local function ekey(hex) return P .. 'e:' .. hex end
local function opt(a) if a == '' then return false end return string.sub(a, 2) end
-- Moves `hex` from the index of state `from` (if any) to that of `to`.
local function set_state(hex, from, to, received)
  if from then redis.call('ZREM', P .. 's:' .. from, hex) end
  redis.call('ZADD', P .. 's:' .. to, received, hex)
  redis.call('HSET', ekey(hex), 'state', to)
end
-- Appends a stream entry for `hex`: a worker may lease it.
local function push(hex)
  local id = redis.call('XADD', STREAM, '*', 'k', hex)
  redis.call('HSET', ekey(hex), 'sid', id)
end
-- Acknowledges and deletes stream entry `id` (the group may be gone).
local function drop_entry(id)
  redis.pcall('XACK', STREAM, GROUP, id)
  redis.call('XDEL', STREAM, id)
end
-- Takes `hex` out of the stream.
local function unstream(hex)
  local sid = redis.call('HGET', ekey(hex), 'sid')
  if sid then
    drop_entry(sid)
    redis.call('HDEL', ekey(hex), 'sid')
  end
end
-- Streams the first entry of an order list unless it runs or waits for a
-- retry already; drops finished or deleted entries from its head.
local function release_head(list)
  while true do
    local head = redis.call('LINDEX', list, 0)
    if not head then return end
    local f = redis.call('HMGET', ekey(head), 'state', 'sid')
    if f[1] == 'ready' then
      if not f[2] then push(head) end
      return
    elseif f[1] == 'leased' or f[1] == 'retry' then
      return
    end
    redis.call('LPOP', list)
  end
end
-- `hex` is finished (done or dead): the next event of its call goes ahead.
local function leave_order(hex, order)
  if not order then return end
  local list = P .. 'o:' .. order
  local head = redis.call('LINDEX', list, 0)
  if redis.call('LREM', list, 1, hex) > 0 and head == hex then release_head(list) end
end
-- A ready entry: into the stream, or behind the unfinished events of its call.
local function enqueue(hex, order, ordered)
  if ordered and order then
    if redis.call('RPUSH', P .. 'o:' .. order, hex) > 1 then return end
  end
  push(hex)
end
-- Deletes a done entry (or the index members of one that expired).
local function prune_one(hex)
  local e = ekey(hex)
  local state = redis.call('HGET', e, 'state')
  redis.call('ZREM', P .. 's:done', hex)
  if state == 'done' or not state then
    redis.call('DEL', e)
    redis.call('ZREM', P .. 'all', hex)
  end
  return state == 'done'
end
-- The token check of ack, fail, extend and release: the entry's fields, or
-- false when `token` does not hold its lease.
local function held(hex, token)
  local f = redis.call('HMGET', ekey(hex), 'state', 'token', 'received', 'order')
  if f[1] ~= 'leased' or f[2] ~= token then return false end
  return f
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// `ARGV` 3 hex, 4 body, 5 event (opt), 6 order (opt), 7 received ms,
/// 8 dead reason (opt), 9 per-call order `1`/`0`. Returns 1 when stored, 0
/// when the key exists.
pub(super) static INSERT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local hex = ARGV[3]
local e = ekey(hex)
if redis.call('EXISTS', e) == 1 then return 0 end
local event, order, dead, received = opt(ARGV[5]), opt(ARGV[6]), opt(ARGV[8]), ARGV[7]
redis.call('HSET', e, 'body', ARGV[4], 'received', received, 'attempts', 0,
  'seq', redis.call('INCR', P .. 'seq'))
if event then redis.call('HSET', e, 'event', event) end
if order then redis.call('HSET', e, 'order', order) end
redis.call('ZADD', P .. 'all', received, hex)
-- A copy of an expired done entry: its old index member may be left.
redis.call('ZREM', P .. 's:done', hex)
if dead then
  redis.call('HSET', e, 'error', dead)
  set_state(hex, false, 'dead', received)
else
  set_state(hex, false, 'ready', received)
  enqueue(hex, order, ARGV[9] == '1')
end
return 1",
    )
});

/// `ARGV` 3 consumer, 4 now ms, 5 lease end ms, 6 max, 7 done entries
/// received before this bound (`(<ms>`) have expired (`""`: none expire),
/// 8… one token per slot.
///
/// Takes over leases that ended by the callers' clock (`leases`, moving
/// their pending stream entries to this consumer), sweeps expired done
/// entries, streams due retries, then reads new entries (`XREADGROUP`).
/// Each delivered entry whose hash still names it (`sid`) and is ready, or
/// leased with an ended lease, is leased; a stale entry is acknowledged and
/// deleted; one whose lease still holds stays pending. Fails with `NOGROUP`
/// before any write when the group is gone. Returns `{hex, token, body,
/// event, received, attempts}` per leased entry, in the order they were
/// stored.
pub(super) static LEASE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local consumer, now, due, max = ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
-- A missing group fails here, before any write.
redis.call('XPENDING', STREAM, GROUP, '-', '+', 0)
local out = {}
local function lease(hex, from, received)
  local token = ARGV[8 + #out]
  local e = ekey(hex)
  redis.call('HSET', e, 'token', token, 'due', due, 'consumer', consumer)
  redis.call('ZADD', LEASES, due, hex)
  set_state(hex, from, 'leased', received)
  local g = redis.call('HMGET', e, 'body', 'event', 'received', 'attempts', 'seq')
  out[#out + 1] = {hex, token, g[1], g[2], g[3], g[4], tonumber(g[5] or 0)}
end
local function take(id, fields)
  local hex = fields and fields[2]
  if not hex then drop_entry(id) return end
  local f = redis.call('HMGET', ekey(hex), 'state', 'sid', 'due', 'received')
  if f[2] ~= id or (f[1] ~= 'ready' and f[1] ~= 'leased') then
    drop_entry(id)
    return
  end
  if f[1] == 'leased' and tonumber(f[3] or 0) > now then return end
  lease(hex, f[1], f[4])
end

-- Leases that ended: the pending stream entry moves to this consumer.
local ended = redis.call('ZRANGEBYSCORE', LEASES, '-inf', ARGV[4], 'LIMIT', 0, max)
for _, hex in ipairs(ended) do
  local f = redis.call('HMGET', ekey(hex), 'state', 'sid', 'received')
  if f[1] == 'leased' then
    if f[2] then redis.call('XCLAIM', STREAM, GROUP, consumer, 0, f[2], 'JUSTID') end
    lease(hex, 'leased', f[3])
  else
    redis.call('ZREM', LEASES, hex)
  end
end

if ARGV[7] ~= '' then
  local expired = redis.call('ZRANGEBYSCORE', P .. 's:done', '-inf', ARGV[7], 'LIMIT', 0, 20)
  for _, hex in ipairs(expired) do prune_one(hex) end
end

local due_retries = redis.call('ZRANGEBYSCORE', P .. 'retry', '-inf', ARGV[4], 'LIMIT', 0, 100)
for _, hex in ipairs(due_retries) do
  redis.call('ZREM', P .. 'retry', hex)
  local f = redis.call('HMGET', ekey(hex), 'state', 'received')
  if f[1] == 'retry' then
    redis.call('HDEL', ekey(hex), 'due')
    set_state(hex, 'retry', 'ready', f[2])
    push(hex)
  end
end

for _ = 1, 4 do
  local want = max - #out
  if want <= 0 then break end
  local read = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', want, 'STREAMS', STREAM, '>')
  if not read then break end
  local entries = read[1][2]
  for _, entry in ipairs(entries) do take(entry[1], entry[2]) end
  if #entries < want then break end
end
-- Oldest stored first, wherever each came from.
table.sort(out, function(a, b) return a[7] < b[7] end)
for _, row in ipairs(out) do row[7] = nil end
return out",
    )
});

/// `ARGV` 3 hex, 4 token, 5 due ms. Extends the lease. Returns 1, or 0
/// when the token does not hold.
pub(super) static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if not held(ARGV[3], ARGV[4]) then return 0 end
redis.call('HSET', ekey(ARGV[3]), 'due', ARGV[5])
redis.call('ZADD', LEASES, ARGV[5], ARGV[3])
return 1",
    )
});

/// `ARGV` 3 hex, 4 token, 5 now ms, 6 done TTL ms (`""`: none). Done; the
/// next event of its call goes ahead; expires at received + TTL by the
/// caller's clock (the time left is set, not an instant, as Redis' clock may
/// differ). Returns 1, or 0 when the token does not hold.
pub(super) static ACK: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local hex = ARGV[3]
local e = ekey(hex)
local f = held(hex, ARGV[4])
if not f then return 0 end
unstream(hex)
redis.call('ZREM', LEASES, hex)
redis.call('HDEL', e, 'token', 'due', 'consumer')
set_state(hex, 'leased', 'done', f[3])
leave_order(hex, f[4])
if ARGV[6] ~= '' then
  local left = tonumber(f[3]) + tonumber(ARGV[6]) - tonumber(ARGV[5])
  if left <= 0 then
    prune_one(hex)
  else
    redis.call('PEXPIRE', e, string.format('%.0f', left))
  end
end
return 1",
    )
});

/// `ARGV` 3 hex, 4 token, 5 error, 6 retry at ms (`""`: dead). Counts the
/// attempt; a retry keeps its place at the head of its call, a dead entry
/// lets the next event of its call go ahead. Returns 1, or 0 when the token
/// does not hold.
pub(super) static FAIL: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local hex = ARGV[3]
local e = ekey(hex)
local f = held(hex, ARGV[4])
if not f then return 0 end
unstream(hex)
redis.call('ZREM', LEASES, hex)
redis.call('HINCRBY', e, 'attempts', 1)
redis.call('HSET', e, 'error', ARGV[5])
redis.call('HDEL', e, 'token', 'consumer')
if ARGV[6] ~= '' then
  redis.call('HSET', e, 'due', ARGV[6])
  redis.call('ZADD', P .. 'retry', ARGV[6], hex)
  set_state(hex, 'leased', 'retry', f[3])
else
  redis.call('HDEL', e, 'due')
  set_state(hex, 'leased', 'dead', f[3])
  leave_order(hex, f[4])
end
return 1",
    )
});

/// `ARGV` 3 hex, 4 token. Ready again at once (a new stream entry), attempts
/// unchanged. Returns 1, or 0 when the token does not hold.
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local hex = ARGV[3]
local f = held(hex, ARGV[4])
if not f then return 0 end
unstream(hex)
redis.call('ZREM', LEASES, hex)
redis.call('HDEL', ekey(hex), 'token', 'due', 'consumer')
set_state(hex, 'leased', 'ready', f[3])
push(hex)
return 1",
    )
});

/// `ARGV` 3 per-call order `1`/`0`, then either 4 `key`, 5 hex (returns 1
/// when replayed, else 0), or 4 `range`, 5 index (`all`, `s:dead`), 6 min,
/// 7 max score, 8 offset, 9 count (returns `{replayed, scanned, removed}`;
/// removed are index members of deleted entries).
///
/// A ready entry keeps its place; a retry is streamed at once (it heads its
/// call already); a dead or done entry is queued behind the unfinished
/// events of its call. Leased entries are left alone.
pub(super) static REPLAY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local ordered = ARGV[3] == '1'
local function replay_one(hex)
  local e = ekey(hex)
  local f = redis.call('HMGET', e, 'state', 'received', 'order')
  if not f[1] then
    redis.call('ZREM', P .. 'all', hex)
    redis.call('ZREM', P .. 'retry', hex)
    redis.call('ZREM', LEASES, hex)
    for _, s in ipairs(STATES) do redis.call('ZREM', P .. 's:' .. s, hex) end
    return -1
  end
  if f[1] == 'leased' then return 0 end
  redis.call('HSET', e, 'attempts', 0)
  if f[1] == 'ready' then return 1 end
  redis.call('HDEL', e, 'due')
  if f[1] == 'retry' then
    redis.call('ZREM', P .. 'retry', hex)
    set_state(hex, 'retry', 'ready', f[2])
    push(hex)
  else
    redis.call('PERSIST', e)
    set_state(hex, f[1], 'ready', f[2])
    enqueue(hex, f[3], ordered)
  end
  return 1
end

if ARGV[4] == 'key' then
  return math.max(replay_one(ARGV[5]), 0)
end
local hexes = redis.call('ZRANGEBYSCORE', P .. ARGV[5], ARGV[6], ARGV[7], 'LIMIT', ARGV[8], ARGV[9])
local replayed, removed = 0, 0
for _, hex in ipairs(hexes) do
  local r = replay_one(hex)
  if r > 0 then replayed = replayed + 1 elseif r < 0 then removed = removed + 1 end
end
return {replayed, #hexes, removed}",
    )
});

/// `ARGV` 3 state (`""`: any), 4 min received ms, 5 limit. Returns
/// `{hex, state, event, order, received, attempts, due, error, body
/// length}` per entry, oldest received first, skipping index members of
/// expired entries.
pub(super) static LIST: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local state, limit = ARGV[3], tonumber(ARGV[5])
local index = P .. 'all'
if state ~= '' then index = P .. 's:' .. state end
local out, offset = {}, 0
while #out < limit do
  local hexes = redis.call('ZRANGEBYSCORE', index, ARGV[4], '+inf', 'LIMIT', offset, limit - #out)
  if #hexes == 0 then break end
  offset = offset + #hexes
  for _, hex in ipairs(hexes) do
    local e = ekey(hex)
    local f = redis.call('HMGET', e, 'state', 'event', 'order', 'received', 'attempts', 'due', 'error')
    if f[1] and (state == '' or f[1] == state) then
      out[#out + 1] = {hex, f[1], f[2], f[3], f[4], f[5], f[6], f[7], redis.call('HSTRLEN', e, 'body')}
    end
  end
end
return out",
    )
});

/// `ARGV` 3 upper bound (`(<ms>`: received before), 4 count. Deletes up to
/// `count` done entries received before the bound. Returns `{pruned,
/// scanned}`.
pub(super) static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local hexes = redis.call('ZRANGEBYSCORE', P .. 's:done', '-inf', ARGV[3], 'LIMIT', 0, ARGV[4])
local pruned = 0
for _, hex in ipairs(hexes) do
  if prune_one(hex) then pruned = pruned + 1 end
end
return {pruned, #hexes}",
    )
});

/// Counts by state (ready, leased, retry, dead, done) and the received time
/// of the oldest ready entry (nil when none).
pub(super) static STATS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local out = {}
for i, s in ipairs(STATES) do out[i] = redis.call('ZCARD', P .. 's:' .. s) end
local oldest = redis.call('ZRANGE', P .. 's:ready', 0, 0, 'WITHSCORES')
out[6] = oldest[2] and tonumber(oldest[2]) or false
return out",
    )
});

/// `ARGV` 3 watermark name, 4 ms. Raises `w:<name>` to ms, never lowers it.
/// Returns the value now stored. (Milliseconds are exact in a Lua double.)
pub(super) static ADVANCE_WATERMARK: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local key = P .. 'w:' .. ARGV[3]
local now = tonumber(redis.call('GET', key) or '')
local to = tonumber(ARGV[4])
if now and now >= to then return now end
redis.call('SET', key, ARGV[4])
return to",
    )
});
