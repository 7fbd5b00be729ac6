//! The Redis session store: every write is one Lua script on the process's multiplexed
//! connection (atomic on the server; no WATCH/MULTI, which would interleave on a shared
//! connection), every key of a session hash-tagged by its id so it lives in one cluster slot.
//!
//! Layout (`<sid>` is the session id with `%`, `{` and `}` percent-escaped, so no id can
//! forge another's keys or break the hash tag):
//! ```text
//! <p>:s:{<sid>}          HASH  v (version), sk (state kind: o object / v value / n none),
//!                              s (state JSON when not an object), created_at, updated_at (ms)
//! <p>:s:{<sid>}:state    HASH  top-level state key -> value JSON (merged key by key)
//! <p>:s:{<sid>}:threads  ZSET  thread name, scored by creation order
//! <p>:s:{<sid>}:t:<n>    LIST  messages of the thread scored n, RPUSH only (or replaced)
//! <p>:s:{<sid>}:turns    HASH  turn id -> version it produced (deduplicates retries)
//! <p>:s:{<sid>}:turnlog  LIST  those turn ids, oldest first: the hash keeps the last
//!                              [`TURN_WINDOW`] to [`TURN_WINDOW_MAX`] only
//! ```
//! A commit carrying `expected_version > 0` for a session whose meta key is gone (Redis
//! restarted without persistence, flushed, expired) fails with `SessionLost`: the store
//! never rebuilds a session from a worker's partial copy. With a TTL every key of the
//! session gets the same `PEXPIRE` on each write.

use std::time::Duration;

use redis::{Script, Value};
use serde_json::value::RawValue;

use super::data::{RawMessage, SessionData, StoredSession, stored_message};
use super::store::{
    Commit, Committed, OnConflict, SessionStore, StateWrite, ThreadWriteKind, loaded_len_of,
    replaced_thread_error, stale_error, stored_version,
};
use crate::engines::block_on;
use crate::engines::redis::{Redis, RedisOptions, Retry};
use crate::errors::{Error, Result};

const SAVE: &str = r#"
local meta, statek, threadsk, turnsk, turnlog = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local expected, turn, ttl, mode = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
local smode, skind, svalue, npairs = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local pairs_at = 9
local i = pairs_at + 2 * npairs

local function state_reply()
  local kind = redis.call('HGET', meta, 'sk') or ''
  if kind == 'o' then return {kind, redis.call('HGETALL', statek)} end
  if kind == 'v' then return {kind, redis.call('HGET', meta, 's') or 'null'} end
  return {kind, ''}
end

local function thread_key(idx) return meta .. ':t:' .. idx end

local nthreads = tonumber(ARGV[i]); i = i + 1
local plan = {}
for t = 1, nthreads do
  local n = tonumber(ARGV[i + 3])
  plan[t] = {name = ARGV[i], loaded = tonumber(ARGV[i + 1]), kind = ARGV[i + 2], n = n, at = i + 4}
  i = i + 4 + n
end

if turn ~= '' then
  local done = redis.call('HGET', turnsk, turn)
  if done then
    local reply = {'dup', tonumber(redis.call('HGET', meta, 'v') or done), state_reply()}
    for t = 1, nthreads do
      local p = plan[t]
      local idx = redis.call('ZSCORE', threadsk, p.name)
      local tail = {}
      if idx then tail = redis.call('LRANGE', thread_key(idx), p.loaded, -1) end
      reply[#reply + 1] = p.name
      reply[#reply + 1] = tail
    end
    return reply
  end
end

local stored = redis.call('HGET', meta, 'v')
local v = 0
if stored then
  v = tonumber(stored)
  if v == nil or v < 0 or v % 1 ~= 0 then
    return {'corrupt', 'the version field is not a non-negative integer'}
  end
elseif expected > 0 and mode ~= 'f' and mode ~= 'w' then
  return {'lost'}
end
if stored and smode == 'm' and not redis.call('HGET', meta, 'sk') then
  -- Merging onto a state of unknown kind would drop whatever the state hash holds.
  return {'corrupt', 'the state kind field (sk) is missing'}
end
if not stored then
  -- A new session. Keys left by one whose hash was evicted (or expired first) are not its
  -- history: that one read as unknown, so nothing of it may come back now.
  local all = redis.call('ZRANGE', threadsk, 0, -1, 'WITHSCORES')
  for j = 2, #all, 2 do redis.call('DEL', thread_key(all[j])) end
  redis.call('DEL', statek, threadsk, turnsk, turnlog)
  redis.call('HDEL', meta, 'sk', 's')
end

local force = (mode == 'f' or mode == 'w')
local conflict = (not force) and v ~= expected
if conflict and (mode == 'e' or smode == 'r') then return {'conflict', v} end
for t = 1, nthreads do
  local p = plan[t]
  if conflict and p.kind == 'r' then return {'conflict', v} end
  p.idx = redis.call('ZSCORE', threadsk, p.name)
  p.len = 0
  if p.idx then p.len = redis.call('LLEN', thread_key(p.idx)) end
  if stored and mode ~= 'w' and not p.idx
      and redis.call('EXISTS', thread_key(redis.call('ZCARD', threadsk))) == 1 then
    -- The list a new thread would take exists: the thread index lost track of it.
    return {'corrupt', 'a thread list exists that the thread index does not name'}
  end
  if (not force) and p.kind == 'a' and p.len < p.loaded then return {'short', v, p.name, p.len} end
end

if mode == 'w' then
  local all = redis.call('ZRANGE', threadsk, 0, -1, 'WITHSCORES')
  for j = 2, #all, 2 do redis.call('DEL', thread_key(all[j])) end
  redis.call('DEL', threadsk)
  for t = 1, nthreads do plan[t].idx = nil; plan[t].len = 0 end
end

local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local version = v + 1
local gaps = {}
for t = 1, nthreads do
  local p = plan[t]
  local idx = p.idx
  if not idx then
    idx = redis.call('ZCARD', threadsk)
    redis.call('ZADD', threadsk, idx, p.name)
  end
  local key = thread_key(idx)
  -- A whole save replaces every thread, lists its index lost track of included.
  if mode == 'w' then redis.call('DEL', key) end
  local gap = {}
  if p.kind == 'r' then
    redis.call('DEL', key)
  elseif (not force) and p.len > p.loaded then
    gap = redis.call('LRANGE', key, p.loaded, -1)
  end
  local s = p.at
  local e = p.at + p.n - 1
  while s <= e do
    local chunk_end = math.min(s + 999, e)
    redis.call('RPUSH', key, unpack(ARGV, s, chunk_end))
    s = chunk_end + 1
  end
  gaps[#gaps + 1] = p.name
  gaps[#gaps + 1] = gap
end

if smode == 'r' or mode == 'w' then
  redis.call('DEL', statek)
  redis.call('HDEL', meta, 's')
  if skind == 'v' then
    redis.call('HSET', meta, 'sk', 'v', 's', svalue)
  elseif skind == 'o' then
    redis.call('HSET', meta, 'sk', 'o')
  else
    redis.call('HSET', meta, 'sk', 'n')
  end
end
if smode == 'm' and redis.call('HGET', meta, 'sk') ~= 'o' then
  redis.call('DEL', statek)
  redis.call('HDEL', meta, 's')
  redis.call('HSET', meta, 'sk', 'o')
end
for j = pairs_at, pairs_at + 2 * npairs - 1, 2 do
  redis.call('HSET', statek, ARGV[j], ARGV[j + 1])
end

redis.call('HSET', meta, 'v', version, 'updated_at', now_ms)
if not stored then
  -- A new session (an existing one got both fields when it was created).
  redis.call('HSETNX', meta, 'created_at', now_ms)
  if redis.call('HEXISTS', meta, 'sk') == 0 then redis.call('HSET', meta, 'sk', 'n') end
end
if turn ~= '' then
  redis.call('HSET', turnsk, turn, version)
  -- The last TURN_WINDOW turn ids are kept (a retry comes seconds after its turn), trimmed
  -- in batches: once more than TURN_WINDOW_MAX are held, the oldest go down to TURN_WINDOW.
  local held = redis.call('RPUSH', turnlog, turn)
  if held > TURN_WINDOW_MAX then
    local drop = held - TURN_WINDOW
    local old = redis.call('LRANGE', turnlog, 0, drop - 1)
    for j = 1, #old, 1000 do
      redis.call('HDEL', turnsk, unpack(old, j, math.min(j + 999, #old)))
    end
    redis.call('LTRIM', turnlog, drop, -1)
  end
end
if ttl > 0 then
  local all = redis.call('ZRANGE', threadsk, 0, -1, 'WITHSCORES')
  for j = 2, #all, 2 do redis.call('PEXPIRE', thread_key(all[j]), ttl) end
  for _, key in ipairs({meta, statek, threadsk, turnsk, turnlog}) do redis.call('PEXPIRE', key, ttl) end
end

-- The state only when this commit wrote it (the caller keeps its own copy otherwise).
local state = ''
if smode ~= 'k' then state = state_reply() end
local reply = {'ok', version, state}
for j = 1, #gaps do reply[#reply + 1] = gaps[j] end
return reply
"#;

/// How many of a session's latest turn ids are kept, at least, to deduplicate retries.
pub const TURN_WINDOW: usize = 1000;
/// How many are held at most: the oldest are dropped in batches of 100, not one per save.
pub const TURN_WINDOW_MAX: usize = 1100;

const LOAD: &str = r#"
local meta, statek, threadsk = KEYS[1], KEYS[2], KEYS[3]
local v = redis.call('HGET', meta, 'v')
if not v then return false end
local kind = redis.call('HGET', meta, 'sk') or ''
local state = ''
if kind == 'o' then state = redis.call('HGETALL', statek)
elseif kind == 'v' then state = redis.call('HGET', meta, 's') or 'null' end
local threads = {}
local all = redis.call('ZRANGE', threadsk, 0, -1, 'WITHSCORES')
for j = 1, #all, 2 do
  threads[#threads + 1] = all[j]
  threads[#threads + 1] = redis.call('LRANGE', meta .. ':t:' .. all[j + 1], 0, -1)
end
return {v, kind, state, threads}
"#;

const DELETE: &str = r#"
local meta, statek, threadsk, turnsk, turnlog = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local existed = redis.call('EXISTS', meta)
local all = redis.call('ZRANGE', threadsk, 0, -1, 'WITHSCORES')
for j = 2, #all, 2 do redis.call('DEL', meta .. ':t:' .. all[j]) end
redis.call('DEL', meta, statek, threadsk, turnsk, turnlog)
return existed
"#;

pub struct RedisStore {
    redis: Redis,
    prefix: String,
    ttl: Option<Duration>,
    on_conflict: OnConflict,
    save: Script,
    load: Script,
    delete: Script,
}

/// The keys of one session.
struct Keys {
    meta: String,
    state: String,
    threads: String,
    turns: String,
    turn_log: String,
}

impl RedisStore {
    /// A store on `url` under key prefix `prefix` (no I/O until first use).
    pub fn open(
        url: &str,
        prefix: &str,
        ttl: Option<Duration>,
        on_conflict: OnConflict,
        options: RedisOptions,
    ) -> Result<Self> {
        if prefix.is_empty()
            || prefix.len() > 200
            || prefix.contains(['{', '}'])
            || prefix.chars().any(char::is_control)
        {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "prefix must be 1-200 bytes without braces or control characters, not {prefix:?}"
                ),
            });
        }
        if ttl.is_some_and(|t| t < Duration::from_millis(1)) {
            return Err(Error::InvalidArgument {
                detail: "ttl must be at least 1 ms".into(),
            });
        }
        Ok(RedisStore {
            redis: Redis::open(url, options)?,
            prefix: prefix.to_owned(),
            ttl,
            on_conflict,
            save: Script::new(
                &SAVE
                    .replace("TURN_WINDOW_MAX", &TURN_WINDOW_MAX.to_string())
                    .replace("TURN_WINDOW", &TURN_WINDOW.to_string()),
            ),
            load: Script::new(LOAD),
            delete: Script::new(DELETE),
        })
    }

    pub fn target(&self) -> &str {
        self.redis.target()
    }

    fn keys(&self, session_id: &str) -> Keys {
        let escaped = session_id
            .replace('%', "%25")
            .replace('{', "%7B")
            .replace('}', "%7D");
        let meta = format!("{}:s:{{{escaped}}}", self.prefix);
        Keys {
            state: format!("{meta}:state"),
            threads: format!("{meta}:threads"),
            turns: format!("{meta}:turns"),
            turn_log: format!("{meta}:turnlog"),
            meta,
        }
    }

    /// [`SessionStore::commit`] as a future, for callers on the runtime (no thread blocks).
    pub async fn commit_async(&self, session_id: &str, commit: &Commit) -> Result<Committed> {
        self.run_save_async(session_id, commit, self.mode()).await
    }

    fn run_save(&self, session_id: &str, commit: &Commit, mode: &str) -> Result<Committed> {
        block_on(self.run_save_async(session_id, commit, mode))
    }

    fn mode(&self) -> &'static str {
        match self.on_conflict {
            OnConflict::Append => "a",
            OnConflict::Error => "e",
        }
    }

    /// Runs the save script in `mode` (`a`/`e` versioned, `f`orce, `w`hole save).
    async fn run_save_async(
        &self,
        session_id: &str,
        commit: &Commit,
        mode: &str,
    ) -> Result<Committed> {
        let keys = self.keys(session_id);
        let mut invocation = self.save.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.state)
            .key(&keys.threads)
            .key(&keys.turns)
            .key(&keys.turn_log)
            .arg(commit.expected_version)
            .arg(commit.turn_id.as_deref().unwrap_or(""))
            .arg(self.ttl.map_or(0, |t| t.as_millis() as u64))
            .arg(mode);
        match &commit.state {
            StateWrite::Keep => {
                invocation.arg("k").arg("n").arg("").arg(0);
            }
            StateWrite::Replace(None) => {
                invocation.arg("r").arg("n").arg("").arg(0);
            }
            StateWrite::Replace(Some(value)) | StateWrite::Merge(value) => {
                let smode = if matches!(commit.state, StateWrite::Merge(_)) {
                    "m"
                } else {
                    "r"
                };
                match object_fields(session_id, value)? {
                    Some(fields) => {
                        invocation.arg(smode).arg("o").arg("").arg(fields.len());
                        for (key, field) in fields {
                            invocation.arg(key).arg(field.get());
                        }
                    }
                    None if smode == "m" => {
                        return Err(Error::InvalidJson {
                            what: format!("state patch for session {session_id:?}"),
                            detail: "a patch must be a JSON object".into(),
                        });
                    }
                    None => {
                        invocation.arg("r").arg("v").arg(value.get()).arg(0);
                    }
                }
            }
        }
        invocation.arg(commit.threads.len());
        for delta in &commit.threads {
            invocation
                .arg(&delta.thread)
                .arg(delta.loaded_len)
                .arg(match delta.kind {
                    ThreadWriteKind::Append => "a",
                    ThreadWriteKind::Replace => "r",
                })
                .arg(delta.messages.len());
            for message in &delta.messages {
                invocation.arg(message.get());
            }
        }
        // A commit with a turn id is deduplicated by the script, so repeating it after a
        // lost reply is safe; without one it must not be repeated.
        let retry = if commit.turn_id.is_some() || mode == "w" {
            Retry::Safe
        } else {
            Retry::Never
        };
        let reply: Value = self
            .redis
            .invoke(retry, &invocation)
            .await
            .map_err(|e| self.corrupt_if_wrong_type(session_id, e))?;
        self.parse_save_reply(session_id, commit, reply)
    }

    /// A key of the session holding another type means something else wrote it.
    fn corrupt_if_wrong_type(&self, session_id: &str, err: Error) -> Error {
        match err {
            Error::Engine { code, detail, .. }
                if code == "WRONGTYPE" || detail.contains("WRONGTYPE") =>
            {
                Error::corrupt(
                    session_id,
                    format!("Redis keys {}", self.keys(session_id).meta),
                    detail,
                )
            }
            other => other,
        }
    }

    fn parse_save_reply(
        &self,
        session_id: &str,
        commit: &Commit,
        reply: Value,
    ) -> Result<Committed> {
        let bad = |what: &str| Error::corrupt(session_id, "Redis save reply", what.to_owned());
        let items = into_array(reply).ok_or_else(|| bad("not an array"))?;
        let mut items = items.into_iter();
        let tag = items
            .next()
            .and_then(into_string)
            .ok_or_else(|| bad("no status"))?;
        match tag.as_str() {
            "ok" | "dup" => {
                let version = items
                    .next()
                    .and_then(into_int)
                    .ok_or_else(|| bad("no version"))?;
                let state = items.next().ok_or_else(|| bad("no state"))?;
                let mut outcome = Committed {
                    version: stored_version(session_id, "Redis save reply", version)?,
                    duplicate: tag == "dup",
                    ..Committed::default()
                };
                if tag == "dup" || !matches!(commit.state, StateWrite::Keep) {
                    outcome.state = parse_state(session_id, state)?;
                }
                while let Some(name) = items.next() {
                    let name = into_string(name).ok_or_else(|| bad("thread name"))?;
                    let list = items.next().ok_or_else(|| bad("thread messages"))?;
                    let loaded = commit
                        .threads
                        .iter()
                        .find(|d| d.thread == name)
                        .map_or(0, |d| d.loaded_len);
                    let messages = parse_messages(session_id, &name, loaded, list)?;
                    outcome.threads.push((name, messages));
                }
                Ok(outcome)
            }
            "lost" => Err(Error::SessionLost {
                session_id: session_id.to_owned(),
                detail: format!(
                    "this worker holds version {} but Redis at {} has no such session \
                     (restarted without persistence, flushed, deleted or expired); \
                     load it again to start over",
                    commit.expected_version,
                    self.redis.target()
                ),
            }),
            "conflict" => {
                let stored = items.next().and_then(into_int).unwrap_or(-1);
                Err(stale_error(
                    session_id,
                    commit.expected_version,
                    u64::try_from(stored).unwrap_or(0),
                ))
            }
            "short" => {
                let _ = items.next();
                let thread = items.next().and_then(into_string).unwrap_or_default();
                let len = items.next().and_then(into_int).unwrap_or(-1);
                let loaded = loaded_len_of(commit, &thread);
                Err(replaced_thread_error(session_id, &thread, len, loaded))
            }
            "corrupt" => {
                let detail = items.next().and_then(into_string).unwrap_or_default();
                Err(Error::corrupt(session_id, "Redis meta hash", detail))
            }
            other => Err(bad(&format!("unknown status {other:?}"))),
        }
    }
}

/// A state's top-level fields when it is a JSON object, `None` otherwise.
fn object_fields<'a>(
    session_id: &str,
    value: &'a RawValue,
) -> Result<Option<indexmap::IndexMap<String, &'a RawValue>>> {
    if !value.get().trim_start().starts_with('{') {
        return Ok(None);
    }
    serde_json::from_str(value.get())
        .map(Some)
        .map_err(|e| Error::InvalidJson {
            what: format!("state for session {session_id:?}"),
            detail: e.to_string(),
        })
}

fn into_array(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

fn into_string(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn into_int(value: Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(n),
        other => into_string(other)?.parse().ok(),
    }
}

/// `{kind, payload}` from the scripts: the stored state as raw JSON.
fn parse_state(session_id: &str, reply: Value) -> Result<Option<Box<RawValue>>> {
    let bad = |detail: String| Error::corrupt(session_id, "state", detail);
    let mut parts = into_array(reply)
        .ok_or_else(|| bad("not an array".into()))?
        .into_iter();
    let kind = parts.next().and_then(into_string).unwrap_or_default();
    let payload = parts.next().unwrap_or(Value::Nil);
    state_from(session_id, &kind, payload)
}

fn state_from(session_id: &str, kind: &str, payload: Value) -> Result<Option<Box<RawValue>>> {
    let bad = |detail: String| Error::corrupt(session_id, "state", detail);
    match kind {
        "n" => Ok(None),
        "v" => {
            let text = into_string(payload).ok_or_else(|| bad("not a string".into()))?;
            RawValue::from_string(text)
                .map(Some)
                .map_err(|e| bad(e.to_string()))
        }
        "o" => {
            let fields = into_array(payload).ok_or_else(|| bad("not a hash".into()))?;
            let mut object = String::from("{");
            let mut fields = fields.into_iter();
            let mut first = true;
            while let (Some(key), Some(value)) = (fields.next(), fields.next()) {
                let key = into_string(key).ok_or_else(|| bad("a key is not text".into()))?;
                let value = into_string(value).ok_or_else(|| bad("a value is not text".into()))?;
                let raw =
                    RawValue::from_string(value).map_err(|e| bad(format!("field {key:?}: {e}")))?;
                if !first {
                    object.push(',');
                }
                first = false;
                object.push_str(&serde_json::to_string(&key).unwrap_or_default());
                object.push(':');
                object.push_str(raw.get());
            }
            object.push('}');
            RawValue::from_string(object)
                .map(Some)
                .map_err(|e| bad(e.to_string()))
        }
        // Every session gets its kind when it is created: without it the state is unknown.
        "" => Err(bad("the state kind field (sk) is missing".into())),
        other => Err(bad(format!("unknown state kind {other:?}"))),
    }
}

/// A reply list of message texts (not yet validated).
fn message_texts(session_id: &str, thread: &str, list: Value) -> Result<Vec<String>> {
    let items = into_array(list)
        .ok_or_else(|| Error::corrupt(session_id, format!("thread {thread:?}"), "not a list"))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            into_string(item).ok_or_else(|| {
                Error::corrupt(
                    session_id,
                    format!("thread {thread:?}, message {i}"),
                    "not text",
                )
            })
        })
        .collect()
}

/// A reply list of messages, validated (`first` is the index of the first one in the thread).
fn parse_messages(
    session_id: &str,
    thread: &str,
    first: usize,
    list: Value,
) -> Result<Vec<RawMessage>> {
    message_texts(session_id, thread, list)?
        .into_iter()
        .enumerate()
        .map(|(i, text)| stored_message(session_id, thread, first + i, text))
        .collect()
}

impl SessionStore for RedisStore {
    fn load(&self, session_id: &str) -> Result<Option<SessionData>> {
        Ok(self.load_versioned(session_id)?.map(|(data, _)| data))
    }

    fn save(&self, data: &SessionData) -> Result<u64> {
        self.run_save(&data.id, &Commit::whole_save(data), "w")
            .map(|done| done.version)
    }

    fn force(&self, session_id: &str, commit: &Commit) -> Result<()> {
        self.run_save(session_id, commit, "f").map(|_| ())
    }

    fn delete(&self, session_id: &str) -> Result<bool> {
        let keys = self.keys(session_id);
        let mut invocation = self.delete.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.state)
            .key(&keys.threads)
            .key(&keys.turns)
            .key(&keys.turn_log);
        let existed: i64 = block_on(self.redis.run(Retry::Safe, async |conn| {
            invocation.invoke_async(conn).await
        }))?;
        Ok(existed == 1)
    }

    fn load_versioned(&self, session_id: &str) -> Result<Option<(SessionData, u64)>> {
        self.load_texts(session_id)?
            .map(|stored| stored.into_data(session_id))
            .transpose()
    }

    fn load_texts(&self, session_id: &str) -> Result<Option<StoredSession>> {
        block_on(self.load_texts_async(session_id))
    }

    fn commit(&self, session_id: &str, commit: &Commit) -> Result<Committed> {
        self.run_save(session_id, commit, self.mode())
    }
}

impl RedisStore {
    /// The whole session as text, in one round trip: one `MULTI`/`EXEC` of plain reads, a
    /// snapshot as atomic as a script's. The [`LOAD`] script reads the same keys, but its
    /// reply of a 10k-message session cost the server 3.9 ms where the `LRANGE` in it took
    /// 0.65 ms: the rest was copying every message into Lua and back out.
    ///
    /// A thread's list is keyed by its score in the threads key, which is only known from
    /// the snapshot itself: the read takes the list of score 0 (a session's first thread;
    /// most have one only), and when the snapshot lists other threads, reads again with
    /// theirs. Should the threads keep changing under it, the script reads everything.
    pub async fn load_texts_async(&self, session_id: &str) -> Result<Option<StoredSession>> {
        let keys = self.keys(session_id);
        let mut scores = vec!["0".to_owned()];
        for _ in 0..3 {
            let mut pipe = redis::pipe();
            // Errors stay in the reply: a session without its meta key is unknown, whatever
            // its other keys hold (as in the script, which reads nothing else then).
            pipe.atomic().ignore_errors();
            pipe.cmd("HMGET")
                .arg(&keys.meta)
                .arg("v")
                .arg("sk")
                .arg("s");
            pipe.cmd("HGETALL").arg(&keys.state);
            pipe.cmd("ZRANGE")
                .arg(&keys.threads)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES");
            for score in &scores {
                pipe.cmd("LRANGE")
                    .arg(format!("{}:t:{score}", keys.meta))
                    .arg(0)
                    .arg(-1);
            }
            let reply: Vec<Value> = self
                .redis
                .query_pipeline(Retry::Safe, &pipe)
                .await
                .map_err(|e| self.corrupt_if_wrong_type(session_id, e))?;
            match self.snapshot(session_id, &keys, &scores, reply)? {
                Snapshot::Unknown => return Ok(None),
                Snapshot::Session(stored) => return Ok(Some(stored)),
                Snapshot::OtherThreads(listed) => scores = listed,
            }
        }
        self.load_by_script(session_id).await
    }

    /// One `MULTI` reply of [`load_texts_async`](Self::load_texts_async): what the script
    /// would have returned, read from the same keys.
    fn snapshot(
        &self,
        session_id: &str,
        keys: &Keys,
        scores: &[String],
        reply: Vec<Value>,
    ) -> Result<Snapshot> {
        let bad = |detail: &str| Error::corrupt(session_id, "Redis load reply", detail.to_owned());
        let mut reply = reply.into_iter();
        let mut meta = reply
            .next()
            .map(|v| self.server_error(session_id, v))
            .transpose()?
            .and_then(into_array)
            .ok_or_else(|| bad("no meta fields"))?
            .into_iter();
        let version = match meta.next() {
            None | Some(Value::Nil) => return Ok(Snapshot::Unknown),
            Some(v) => into_int(v).ok_or_else(|| {
                Error::corrupt(
                    session_id,
                    format!("Redis key {}", keys.meta),
                    "the version field is not a number",
                )
            })?,
        };
        let kind = match meta.next() {
            None | Some(Value::Nil) => String::new(),
            Some(kind) => into_string(kind).ok_or_else(|| bad("no state kind"))?,
        };
        let fields = reply.next().unwrap_or(Value::Nil);
        let payload = match kind.as_str() {
            "o" => self.server_error(session_id, fields)?,
            "v" => match meta.next() {
                None | Some(Value::Nil) => Value::SimpleString("null".to_owned()),
                Some(value) => value,
            },
            _ => Value::Nil,
        };
        let state = state_from(session_id, &kind, payload)?;
        let listed = self.server_error(session_id, reply.next().unwrap_or(Value::Nil))?;
        let listed = into_array(listed).ok_or_else(|| bad("no threads"))?;
        let mut threads = Vec::with_capacity(listed.len() / 2);
        let mut listed = listed.into_iter();
        while let (Some(name), Some(score)) = (listed.next(), listed.next()) {
            let name = into_string(name).ok_or_else(|| bad("thread name"))?;
            let score = into_string(score).ok_or_else(|| bad("thread score"))?;
            threads.push((name, score));
        }
        if threads.iter().any(|(_, score)| !scores.contains(score)) {
            return Ok(Snapshot::OtherThreads(
                threads.into_iter().map(|(_, score)| score).collect(),
            ));
        }
        let mut lists: Vec<Value> = reply.collect();
        if threads.is_empty() {
            // No thread listed, yet the list of the first one holds messages: the thread
            // index was lost (evicted), not the messages.
            let first = scores.iter().position(|s| s == "0");
            if let Some(Value::Array(list)) = first.and_then(|at| lists.get(at))
                && !list.is_empty()
            {
                return Err(Error::corrupt(
                    session_id,
                    format!("Redis key {}", keys.threads),
                    "a thread list exists that the thread index does not name",
                ));
            }
        }
        let mut stored = StoredSession {
            version: stored_version(session_id, "Redis load reply", version)?,
            state: state.map(|s| s.get().to_owned()),
            threads: Vec::with_capacity(threads.len()),
        };
        for (i, (name, score)) in threads.iter().enumerate() {
            let at = scores.iter().position(|s| s == score).unwrap_or_default();
            // Two threads of one score (written by something else) read the same list, as
            // in the script; the list is copied only then.
            let list = if threads[i + 1..].iter().any(|(_, s)| s == score) {
                lists.get(at).cloned()
            } else {
                lists.get_mut(at).map(std::mem::take)
            };
            let list = self.server_error(session_id, list.unwrap_or(Value::Nil))?;
            let texts = message_texts(session_id, name, list)?;
            stored.threads.push((name.clone(), texts));
        }
        Ok(Snapshot::Session(stored))
    }

    /// A reply element that is an error, as the error a script's command would have raised.
    fn server_error(&self, session_id: &str, value: Value) -> Result<Value> {
        match value {
            Value::ServerError(err) => {
                let err = redis::RedisError::from(err);
                Err(self.corrupt_if_wrong_type(session_id, self.redis.engine_error(&err)))
            }
            other => Ok(other),
        }
    }

    /// The session read by the [`LOAD`] script (one round trip, every message through Lua).
    async fn load_by_script(&self, session_id: &str) -> Result<Option<StoredSession>> {
        let keys = self.keys(session_id);
        let mut invocation = self.load.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.state)
            .key(&keys.threads);
        let reply: Value = self
            .redis
            .invoke(Retry::Safe, &invocation)
            .await
            .map_err(|e| self.corrupt_if_wrong_type(session_id, e))?;
        let Some(parts) = into_array(reply) else {
            return Ok(None); // Lua `false` arrives as nil: no such session
        };
        let bad = |detail: &str| Error::corrupt(session_id, "Redis load reply", detail.to_owned());
        let mut parts = parts.into_iter();
        let version = parts.next().and_then(into_int).ok_or_else(|| {
            Error::corrupt(
                session_id,
                format!("Redis key {}", keys.meta),
                "the version field is not a number",
            )
        })?;
        let kind = parts
            .next()
            .and_then(into_string)
            .ok_or_else(|| bad("no state kind"))?;
        let state = state_from(session_id, &kind, parts.next().unwrap_or(Value::Nil))?;
        let threads = parts
            .next()
            .and_then(into_array)
            .ok_or_else(|| bad("no threads"))?;
        let mut stored = StoredSession {
            version: stored_version(session_id, &format!("Redis key {}", keys.meta), version)?,
            state: state.map(|s| s.get().to_owned()),
            threads: Vec::new(),
        };
        let mut threads = threads.into_iter();
        while let (Some(name), Some(list)) = (threads.next(), threads.next()) {
            let name = into_string(name).ok_or_else(|| bad("thread name"))?;
            let texts = message_texts(session_id, &name, list)?;
            stored.threads.push((name, texts));
        }
        Ok(Some(stored))
    }
}

/// What one read of [`RedisStore::load_texts_async`] found.
enum Snapshot {
    /// No such session (no meta key, or no version in it).
    Unknown,
    Session(StoredSession),
    /// The session has threads whose lists were not read: their scores.
    OtherThreads(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::data::SessionData;

    const URL: &str = "redis://127.0.0.1:6379/0";

    /// A store on a fresh prefix; its keys are removed on drop.
    struct Fresh(RedisStore, String);

    impl Fresh {
        fn new(tag: &str) -> Fresh {
            let prefix = format!("gp-test-load-{tag}-{}", std::process::id());
            let store = RedisStore::open(
                URL,
                &prefix,
                None,
                OnConflict::Append,
                RedisOptions::default(),
            )
            .unwrap();
            Fresh(store, prefix)
        }

        fn raw(&self, args: &[&str]) {
            let mut cmd = redis::cmd(args[0]);
            for arg in &args[1..] {
                cmd.arg(*arg);
            }
            block_on(self.0.redis.run(Retry::Safe, async |conn| {
                cmd.query_async::<Value>(conn).await
            }))
            .unwrap();
        }

        /// Both reads: the one-`MULTI` load and the script's.
        fn both(&self, id: &str) -> [Result<Option<StoredSession>>; 2] {
            [
                block_on(self.0.load_texts_async(id)),
                block_on(self.0.load_by_script(id)),
            ]
        }
    }

    impl Drop for Fresh {
        fn drop(&mut self) {
            self.0.redis.delete_matching(&format!("{}:*", self.1));
        }
    }

    fn shown(loaded: &Result<Option<StoredSession>>) -> String {
        match loaded {
            Ok(stored) => format!("{stored:?}"),
            Err(Error::Corrupt { .. }) => "corrupt".to_owned(),
            Err(err) => format!("error {err}"),
        }
    }

    #[test]
    fn the_multi_read_returns_what_the_script_returns() {
        let fresh = Fresh::new("same");
        let sessions = [
            (
                "three",
                r#"{"id":"three","state":{"a":1,"b":[2]},"threads":{"main":[{"n":1},{"n":2}],"x":[],"y":[{"n":3}]}}"#,
            ),
            (
                "value",
                r#"{"id":"value","state":"text","threads":{"main":[{"n":1}]}}"#,
            ),
            ("bare", r#"{"id":"bare","threads":{}}"#),
        ];
        for (id, json) in sessions {
            fresh
                .0
                .save(&SessionData::from_json(id, json).unwrap())
                .unwrap();
            let [multi, script] = fresh.both(id);
            assert_eq!(shown(&multi), shown(&script), "{id}");
            assert!(multi.unwrap().is_some(), "{id}");
        }
        let [multi, script] = fresh.both("unknown");
        assert!(multi.unwrap().is_none() && script.unwrap().is_none());
    }

    #[test]
    fn keys_of_the_wrong_type_read_as_the_script_reads_them() {
        let fresh = Fresh::new("types");
        let meta = |id: &str| format!("{}:s:{{{id}}}", fresh.1);
        let json = |id: &str| format!(r#"{{"id":"{id}","threads":{{"main":[{{"n":1}}]}}}}"#);
        for id in ["nometa", "badstate", "badlist", "badmeta"] {
            fresh
                .0
                .save(&SessionData::from_json(id, &json(id)).unwrap())
                .unwrap();
        }
        // No meta key: unknown, whatever the other keys hold.
        fresh.raw(&["DEL", &meta("nometa")]);
        fresh.raw(&["DEL", &format!("{}:threads", meta("nometa"))]);
        fresh.raw(&["SET", &format!("{}:threads", meta("nometa")), "x"]);
        // A state key that is not read (the state kind is none).
        fresh.raw(&["SET", &format!("{}:state", meta("badstate")), "x"]);
        // A thread list, and the meta key, that are not what the store writes.
        fresh.raw(&["DEL", &format!("{}:t:0", meta("badlist"))]);
        fresh.raw(&["SET", &format!("{}:t:0", meta("badlist")), "x"]);
        fresh.raw(&["DEL", &meta("badmeta")]);
        fresh.raw(&["SET", &meta("badmeta"), "x"]);
        for (id, corrupt) in [
            ("nometa", false),
            ("badstate", false),
            ("badlist", true),
            ("badmeta", true),
        ] {
            let [multi, script] = fresh.both(id);
            assert_eq!(shown(&multi), shown(&script), "{id}");
            assert_eq!(multi.is_err(), corrupt, "{id}: {}", shown(&multi));
            if let Err(err) = multi {
                assert!(matches!(err, Error::Corrupt { .. }), "{id}: {err}");
            }
        }
    }
}
