import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * The Lua scripts of the Redis store. A script runs atomically in Redis, so a change that touches
 * several keys (a record and its indexes) is seen whole or not at all by every node. Scripts that
 * replace or delete a record first check that every record they must read is well-formed, and
 * only then write: Redis does not roll a script back when it fails halfway.
 * Key layout: see the top of redis-store.ts.
 */

/** Reply code of a script that met a record it cannot read; the store turns it into a MalformedRecordError. */
export const MALFORMED_REPLY = 'MALFORMED';

/** A script run by its SHA1 (loaded into Redis on first use, again after a Redis restart). */
export class LuaScript {
  private readonly source: string;
  private readonly sha: string;

  constructor(body: string) {
    this.source = PREAMBLE + body;
    this.sha = createHash('sha1').update(this.source).digest('hex');
  }

  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

const PREAMBLE = `
local function malformed(kind, key, field)
  return redis.error_reply('${MALFORMED_REPLY} ' .. kind .. ' record ' .. key .. '[' .. field .. '] is not valid JSON with the members the store needs')
end
-- The decoded record, or nil when it is not JSON or misses one of the string members named.
local function decode(raw, members)
  local ok, value = pcall(cjson.decode, raw)
  if not ok or type(value) ~= 'table' then return nil end
  for _, member in ipairs(members) do
    if type(value[member]) ~= 'string' then return nil end
  end
  return value
end
-- Adds a member to an ordered set once, scored by the store's sequence, so listings keep insertion order.
local function add_in_order(set, sequence, member)
  if not redis.call('ZSCORE', set, member) then
    redis.call('ZADD', set, redis.call('INCR', sequence), member)
  end
end
-- The values of a hash in the order of its ordered set, with their fields.
local function ordered_values(order, hash)
  local fields, values = {}, {}
  for _, field in ipairs(redis.call('ZRANGE', order, 0, -1)) do
    local value = redis.call('HGET', hash, field)
    if value then
      fields[#fields + 1] = field
      values[#values + 1] = value
    end
  end
  return fields, values
end
`;

/** KEYS: meetings, meeting-order, request-tokens, sequence[, replicas:<primary>]. ARGV: id, json, request token. */
export const PUT_MEETING = new LuaScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
add_in_order(KEYS[2], KEYS[4], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
if KEYS[5] then add_in_order(KEYS[5], KEYS[4], ARGV[1]) end
return 1
`);

/**
 * KEYS: meetings, meeting-order, request-tokens, attendees:<id>, attendee-order:<id>, external-user-ids:<id>,
 * join-tokens. ARGV: id, key prefix (for the primary's replica set). Returns the attendees' JSON, in order.
 * Like the embedded store, an unknown meeting removes nothing but still reports the attendees filed under it.
 */
export const DELETE_MEETING = new LuaScript(`
local id = ARGV[1]
local attendee_ids, attendees = ordered_values(KEYS[5], KEYS[4])
local meeting_json = redis.call('HGET', KEYS[1], id)
if not meeting_json then return attendees end
local meeting = decode(meeting_json, {'MeetingId', 'ClientRequestToken'})
if not meeting then return malformed('meeting', KEYS[1], id) end
local tokens = {}
for i, json in ipairs(attendees) do
  local attendee = decode(json, {'JoinToken'})
  if not attendee then return malformed('attendee', KEYS[4], attendee_ids[i]) end
  tokens[i] = attendee.JoinToken
end
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
if redis.call('HGET', KEYS[3], meeting.ClientRequestToken) == id then redis.call('HDEL', KEYS[3], meeting.ClientRequestToken) end
local primary = meeting.PrimaryMeetingId
if type(primary) == 'string' and primary ~= '' then redis.call('ZREM', ARGV[2] .. 'replicas:' .. primary, id) end
for _, token in ipairs(tokens) do redis.call('HDEL', KEYS[7], token) end
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6])
return attendees
`);

/**
 * KEYS: join-tokens, sequence. ARGV: key prefix, then per attendee: meeting id, attendee id, ExternalUserId,
 * JoinToken, json. Applied in order, as the embedded store applies a batch.
 */
export const PUT_ATTENDEES = new LuaScript(`
local prefix = ARGV[1]
local count = (#ARGV - 1) / 5
for i = 0, count - 1 do
  local base = 2 + i * 5
  local hash = prefix .. 'attendees:' .. ARGV[base]
  local previous = redis.call('HGET', hash, ARGV[base + 1])
  if previous and not decode(previous, {'JoinToken'}) then return malformed('attendee', hash, ARGV[base + 1]) end
end
for i = 0, count - 1 do
  local base = 2 + i * 5
  local meeting_id, attendee_id, external_user_id, token = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local hash = prefix .. 'attendees:' .. meeting_id
  local previous = redis.call('HGET', hash, attendee_id)
  if previous then redis.call('HDEL', KEYS[1], cjson.decode(previous).JoinToken) end
  redis.call('HSET', hash, attendee_id, ARGV[base + 4])
  add_in_order(prefix .. 'attendee-order:' .. meeting_id, KEYS[2], attendee_id)
  redis.call('HSET', KEYS[1], token, cjson.encode({meeting_id, attendee_id}))
  redis.call('HSET', prefix .. 'external-user-ids:' .. meeting_id, external_user_id, attendee_id)
end
return count
`);

/** KEYS: attendees:<m>, attendee-order:<m>, external-user-ids:<m>, join-tokens. ARGV: attendee id. Returns its JSON. */
export const DELETE_ATTENDEE = new LuaScript(`
local json = redis.call('HGET', KEYS[1], ARGV[1])
if not json then return false end
local attendee = decode(json, {'JoinToken', 'ExternalUserId'})
if not attendee then return malformed('attendee', KEYS[1], ARGV[1]) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[4], attendee.JoinToken)
if redis.call('HGET', KEYS[3], attendee.ExternalUserId) == ARGV[1] then redis.call('HDEL', KEYS[3], attendee.ExternalUserId) end
return json
`);

/** KEYS: an ordered set, the hash of its records. Returns the records' JSON in order. */
export const ORDERED_VALUES = new LuaScript(`
local _, values = ordered_values(KEYS[1], KEYS[2])
return values
`);

/** KEYS: an index hash (value → record id), the hash of records. ARGV: the value. Returns the record's JSON. */
export const LOOK_UP = new LuaScript(`
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return false end
return redis.call('HGET', KEYS[2], id)
`);

/** KEYS: join-tokens. ARGV: JoinToken, key prefix. Returns the attendee's JSON. */
export const FIND_BY_JOIN_TOKEN = new LuaScript(`
local location_json = redis.call('HGET', KEYS[1], ARGV[1])
if not location_json then return false end
local ok, location = pcall(cjson.decode, location_json)
if not ok or type(location) ~= 'table' or type(location[1]) ~= 'string' or type(location[2]) ~= 'string' then
  return malformed('JoinToken index', KEYS[1], ARGV[1])
end
return redis.call('HGET', ARGV[2] .. 'attendees:' .. location[1], location[2])
`);

/** KEYS: a lock. ARGV: the holder's token, TTL in ms. Extends the lock only while this holder has it. */
export const RENEW_LOCK = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`);

/** KEYS: a lock. ARGV: the holder's token. Deletes the lock only while this holder has it. */
export const RELEASE_LOCK = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);
