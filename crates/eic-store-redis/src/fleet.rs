//! The fleet shared by every node through Redis.
//!
//! Layout, every key under the one hash tag `{fleet}`:
//!
//! - `eic:{fleet}:instances`, a hash: instance id → JSON [`Enrollment`];
//! - `eic:{fleet}:seen`, a sorted set: instance id scored by its last
//!   heartbeat (ms, the heartbeating node's clock, only ever raised);
//! - `eic:{fleet}:changes`, a stream with one entry (field `id`, the
//!   instance id) per durable change of an instance, trimmed to about
//!   [`CHANGES_KEPT`] entries;
//! - `eic:{fleet}:tokens`, a hash: token id → JSON [`JoinToken`].
//!
//! One slot for the whole fleet. A machine costs about 1 KB in Redis, so a
//! large fleet is a few hundred MB on one Cluster master, small next to
//! the pushed keys spread over all of them; and one slot is what lets a
//! change of a record and its stream entry be one script, so no node can
//! read the change without the entry telling it to, nor the entry before
//! the change. Every durable write is one Lua script (Redis runs it
//! atomically and replicates its effects together); a redemption checks and
//! counts a token in one script, so two nodes never both spend its last use.
//!
//! Each node keeps a view (every enrollment and its last-seen time) that a
//! task refreshes every [`FLEET_REFRESH`]: the stream's new entries name
//! the records to fetch again; and every second a window of the sorted
//! set (the last few seconds of heartbeats) moves last-seen times forward.
//! Reads answer from the view only while it was confirmed by a refresh
//! sent less than [`FLEET_STALENESS`] ago, else they fail: so a change
//! acknowledged by Redis is in every node's answers within that bound, or
//! that node answers unavailable.
//!
//! What an acknowledged enrollment, change or redemption survives is Redis's
//! own durability, as for pushed keys (see [`crate::RedisStore`]): with AOF
//! and `appendfsync always` it is on disk; with `everysec` about the last
//! second can be lost in a crash, and a failover to a replica can lose what
//! the old primary had not yet replicated: an enrollment lost so has to
//! join again, and a redemption lost so gives its use back. Heartbeats that
//! only say "still here" are one `ZADD`, no stream entry.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use eic_store::fleet::{
    Enrolled, Enrollment, FleetState, HeartbeatOutcome, InstanceChange, JoinToken, MachineFacts,
    TokenRefusal,
};
use eic_store::{unix_millis, Fleet, StoreError};
use redis::Script;

use crate::RedisConnection;

/// How often a node's view is brought up to date.
pub const FLEET_REFRESH: Duration = Duration::from_millis(250);
/// The oldest confirmation of its view a node answers from.
pub const FLEET_STALENESS: Duration = Duration::from_secs(1);
/// About how many change entries the stream keeps: a node that falls
/// further behind than this loads the whole fleet again.
pub const CHANGES_KEPT: u64 = 100_000;

const INSTANCES: &str = "eic:{fleet}:instances";
const SEEN: &str = "eic:{fleet}:seen";
const CHANGES: &str = "eic:{fleet}:changes";
const TOKENS: &str = "eic:{fleet}:tokens";
/// Per instance, the last-seen time whose loss a node has claimed to audit.
const LOST_CLAIMS: &str = "eic:{fleet}:lost-claims";

/// Records per HSCAN of a full load.
const SCAN_BATCH: usize = 1_000;
/// Sorted-set members per read.
const SEEN_BATCH: usize = 10_000;
/// Stream entries per poll, and polls per refresh: a node this far behind
/// stays unconfirmed until it catches up.
const CHANGES_BATCH: usize = 1_000;
const POLLS_PER_REFRESH: usize = 100;
/// How often a refresh reads the recent heartbeats: each read is a window
/// of [`SEEN_WINDOW_MS`], so reading it every refresh would fetch each
/// heartbeat some twenty times; last-seen times may lag this much more.
const SEEN_REFRESH: Duration = Duration::from_secs(1);
/// How far back, before the latest heartbeat seen, each read looks again:
/// heartbeats are timed by many nodes' clocks and land out of order, so
/// one timed a little earlier can arrive after a later one. This is the
/// clock skew between nodes that heartbeats tolerate.
const SEEN_WINDOW_MS: u64 = 5_000;
/// Compare-and-set attempts before a contended record counts as a failure.
const REPLACE_ATTEMPTS: usize = 8;

/// KEYS[1] instances, KEYS[2] seen, KEYS[3] changes; ARGV[1] id, ARGV[2]
/// JSON, ARGV[3] seen ms, ARGV[4] stream length kept.
static ENROLL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'GT', ARGV[3], ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'id', ARGV[1])
return 1
",
    )
});

/// Compare-and-set of one record. KEYS as [`ENROLL`]; ARGV[1] id, ARGV[2]
/// the JSON the caller changed, ARGV[3] the new JSON, ARGV[4] seen ms or
/// '' (no heartbeat), ARGV[5] stream length kept. Returns `{'replaced'}`,
/// `{'absent'}`, or `{'changed', current JSON}` for the caller to redo
/// its change on.
static REPLACE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return {'absent'}
end
if current ~= ARGV[2] then
  return {'changed', current}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], 'GT', ARGV[4], ARGV[1])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'id', ARGV[1])
return {'replaced'}
",
    )
});

/// KEYS[1] changes. Returns `{entries ever added, last id}` as a full
/// load's starting point.
static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, '0-0'}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local added, last = 0, '0-0'
for i = 1, #info, 2 do
  if info[i] == 'entries-added' then added = info[i + 1] end
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
return {added, last}
",
    )
});

/// The changes after the view's. KEYS[1] changes, KEYS[2] instances;
/// ARGV[1] the last id read, ARGV[2] how many entries were ever added up
/// to it, ARGV[3] the most to read. Returns `{'reload', '', 0, {}, {}}`
/// when entries after it are gone (trimmed, or the stream lost with the
/// data), else `{'ok', last id, entries read, {ids}, {records}}`, the
/// records (nil when removed) of the distinct ids those entries name.
///
/// Exact because the stream is only trimmed from its head: it still holds
/// every unread entry while its length is at least the count added since.
static POLL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local added, length = 0, 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
    if info[i] == 'length' then length = info[i + 1] end
  end
end
local unread = added - tonumber(ARGV[2])
if unread < 0 or unread > length then
  return {'reload', '', 0, {}, {}}
end
if unread == 0 then
  return {'ok', ARGV[1], 0, {}, {}}
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[3])
local last = ARGV[1]
local ids, named = {}, {}
for _, entry in ipairs(entries) do
  last = entry[1]
  local fields = entry[2]
  for i = 1, #fields, 2 do
    local id = fields[i + 1]
    if fields[i] == 'id' and not named[id] then
      named[id] = true
      ids[#ids + 1] = id
    end
  end
end
local records = {}
if #ids > 0 then
  records = redis.call('HMGET', KEYS[2], unpack(ids))
end
return {'ok', last, #entries, ids, records}
",
    )
});

/// KEYS[1] tokens; ARGV[1] id, ARGV[2] the secret's SHA-256 (hex), ARGV[3]
/// now ms. Returns `{'redeemed', token JSON after the use}` or
/// `{'refused', reason}`.
///
/// The secret is checked first, so without it every id answers unknown.
/// Lua's `==` on the two hex strings is not constant-time, but the
/// difference it could leak is nanoseconds inside Redis, under a network
/// round trip's jitter, and it is a hash of 256 random bits being compared.
///
/// The use is counted by rewriting the one `,"used":N,` of the stored
/// JSON rather than re-encoding it with cjson, which would round large
/// integers (Lua numbers are doubles) and turn empty lists into objects.
/// That text occurs once: `used` is a top-level field, and inside a JSON
/// string a quote is always escaped, while every tag's value is a string.
static REDEEM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then
  return {'refused', 'unknown'}
end
local token = cjson.decode(stored)
if token.secret_sha256 ~= ARGV[2] then
  return {'refused', 'unknown'}
end
if token.revoked then
  return {'refused', 'revoked'}
end
if tonumber(ARGV[3]) >= token.expires_at_ms then
  return {'refused', 'expired'}
end
if token.used >= token.uses then
  return {'refused', 'used-up'}
end
local counted, n = string.gsub(stored, ',"used":%d+,', string.format(',"used":%d,', token.used + 1))
if n ~= 1 then
  return redis.error_reply('join token ' .. ARGV[1] .. ' is not in the expected form')
end
redis.call('HSET', KEYS[1], ARGV[1], counted)
return {'redeemed', counted}
"#,
    )
});

/// KEYS[1] the lost claims; ARGV[1] instance id, ARGV[2] its last-seen
/// time. 1 for the first caller with this (instance, last seen), 0 after.
static CLAIM_LOST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#,
    )
});

/// KEYS[1] tokens; ARGV[1] id. 1 when revoked (now or before), 0 when
/// there is no such token. Rewrites the one `,"revoked":false,` as
/// [`REDEEM`] rewrites `used`, for the same reasons.
static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then
  return 0
end
if string.find(stored, ',"revoked":true,', 1, true) then
  return 1
end
local revoked, n = string.gsub(stored, ',"revoked":false,', ',"revoked":true,')
if n ~= 1 then
  return redis.error_reply('join token ' .. ARGV[1] .. ' is not in the expected form')
end
redis.call('HSET', KEYS[1], ARGV[1], revoked)
return 1
"#,
    )
});

/// [`Fleet`] shared through Redis; see the module's documentation.
pub struct RedisFleet {
    connection: RedisConnection,
    view: RwLock<View>,
    /// Where the view is in Redis's history; held for a whole refresh, so
    /// two refreshes never interleave.
    position: tokio::sync::Mutex<Position>,
}

#[derive(Default)]
struct View {
    instances: HashMap<String, Arc<Enrolled>>,
    /// When the request that last brought the view up to date was sent.
    confirmed: Option<Instant>,
}

#[derive(Default)]
struct Position {
    loaded: bool,
    /// The last change entry read, and how many entries the stream had
    /// ever been given up to and including it.
    last_read: String,
    counted: u64,
    /// The latest heartbeat time read, and when.
    seen_max: u64,
    seen_read: Option<Instant>,
}

/// A record as Redis holds it, for a compare-and-set.
struct Current {
    json: String,
    enrollment: Enrollment,
    last_seen_ms: u64,
}

enum Replaced {
    Yes,
    Absent,
    Changed(Box<Current>),
}

enum Polled {
    UpToDate,
    /// More entries are waiting than one refresh reads.
    Behind,
    /// Entries this view never read are gone.
    Gap,
}

impl RedisFleet {
    /// A fleet with an empty, unconfirmed view: reads fail until a
    /// [`RedisFleet::refresh`] succeeds; writes work at once.
    pub fn new(connection: RedisConnection) -> Self {
        RedisFleet {
            connection,
            view: RwLock::new(View::default()),
            position: tokio::sync::Mutex::new(Position::default()),
        }
    }

    /// As [`RedisFleet::new`], with a task on the current runtime that
    /// refreshes the view every [`FLEET_REFRESH`] for as long as the fleet
    /// lives, starting with a full load at once.
    pub fn start(connection: RedisConnection) -> Arc<Self> {
        let fleet = Arc::new(Self::new(connection));
        tokio::spawn(refresh_while_alive(Arc::downgrade(&fleet)));
        fleet
    }

    /// Brings the view up to date: the whole fleet the first time (and
    /// when the changes it missed are no longer in the stream), then the
    /// changes since and the recent heartbeats.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let mut position = self.position.lock().await;
        let mut reloaded = false;
        loop {
            if !position.loaded {
                self.load(&mut position).await?;
            }
            // A load takes a while: what confirms the view is the poll
            // after it, which catches up with the changes made meanwhile.
            let sent = Instant::now();
            match self.poll(&mut position).await? {
                Polled::UpToDate => {
                    self.read_recent_seen(&mut position).await?;
                    let mut view = self.write_view();
                    if view.confirmed.is_none_or(|at| at < sent) {
                        view.confirmed = Some(sent);
                    }
                    return Ok(());
                }
                Polled::Behind => {
                    self.read_recent_seen(&mut position).await?;
                    return Err(StoreError::Unavailable(format!(
                        "fleet view more than {} changes behind",
                        CHANGES_BATCH * POLLS_PER_REFRESH
                    )));
                }
                Polled::Gap if !reloaded => {
                    tracing::warn!(
                        "fleet changes trimmed or lost before this node read them; \
                         loading the whole fleet again"
                    );
                    position.loaded = false;
                    reloaded = true;
                }
                Polled::Gap => {
                    return Err(StoreError::Unavailable(
                        "fleet changes trimmed faster than a full load".into(),
                    ))
                }
            }
        }
    }

    /// Every record and heartbeat, replacing the view. Changes made while
    /// it scans are after the snapshot's stream position, so the poll that
    /// follows fetches them again.
    async fn load(&self, position: &mut Position) -> Result<(), StoreError> {
        let mut snapshot = SNAPSHOT.prepare_invoke();
        snapshot.key(CHANGES);
        let mut c = self.connection.conn();
        let (counted, last_read): (u64, String) = self
            .connection
            .run("fleet snapshot", async move {
                snapshot.invoke_async(&mut c).await
            })
            .await?;

        // The next batch is fetched while this one is decoded.
        let (batches, mut scanned) = tokio::sync::mpsc::channel(2);
        tokio::spawn(scan_instances(self.connection.clone(), batches));
        let mut instances = HashMap::new();
        while let Some(batch) = scanned.recv().await {
            for (id, json) in batch? {
                if let Some(enrollment) = decode_enrollment(&id, &json) {
                    instances.insert(id, Enrolled::new(enrollment, 0));
                }
            }
        }
        let seen_read = Some(Instant::now());
        let seen_max = self
            .read_seen(0, |batch| {
                for (id, ms) in batch {
                    if let Some(enrolled) = instances.get(id) {
                        enrolled.seen(*ms);
                    }
                }
            })
            .await?;

        let mut view = self.write_view();
        // Own heartbeats since the sorted set was read are only here.
        for (id, enrolled) in &instances {
            if let Some(before) = view.instances.get(id) {
                enrolled.seen(before.last_seen_ms());
            }
        }
        view.instances = instances;
        *position = Position {
            loaded: true,
            last_read,
            counted,
            seen_max,
            seen_read,
        };
        Ok(())
    }

    /// Reads the change entries after the view's and fetches the records
    /// they name.
    async fn poll(&self, position: &mut Position) -> Result<Polled, StoreError> {
        for _ in 0..POLLS_PER_REFRESH {
            let mut invocation = POLL.prepare_invoke();
            invocation
                .key(CHANGES)
                .key(INSTANCES)
                .arg(&position.last_read)
                .arg(position.counted)
                .arg(CHANGES_BATCH);
            let mut c = self.connection.conn();
            type Reply = (String, String, u64, Vec<String>, Vec<Option<Vec<u8>>>);
            let (status, last_read, read, ids, records): Reply = self
                .connection
                .run("fleet poll", async move {
                    invocation.invoke_async(&mut c).await
                })
                .await?;
            if status == "reload" {
                return Ok(Polled::Gap);
            }
            if read == 0 {
                return Ok(Polled::UpToDate);
            }
            position.last_read = last_read;
            position.counted += read;
            self.apply(ids.into_iter().zip(records));
            if read < CHANGES_BATCH as u64 {
                return Ok(Polled::UpToDate);
            }
        }
        Ok(Polled::Behind)
    }

    /// Replaces the changed records in the view, carrying their last-seen
    /// times over; a record no longer in Redis leaves the view.
    fn apply(&self, changed: impl Iterator<Item = (String, Option<Vec<u8>>)>) {
        let decoded: Vec<(String, Option<Enrollment>)> = changed
            .map(|(id, json)| {
                let enrollment = json.and_then(|json| decode_enrollment(&id, &json));
                (id, enrollment)
            })
            .collect();
        let mut view = self.write_view();
        for (id, enrollment) in decoded {
            match enrollment {
                None => {
                    view.instances.remove(&id);
                }
                Some(enrollment) => {
                    let last_seen = match view.instances.get(&id) {
                        // Often this node's own write, already in the view.
                        Some(known) if known.enrollment == enrollment => continue,
                        Some(known) => known.last_seen_ms(),
                        None => 0,
                    };
                    view.instances
                        .insert(id, Enrolled::new(enrollment, last_seen));
                }
            }
        }
    }

    /// Moves last-seen times forward from the heartbeats of the last
    /// [`SEEN_WINDOW_MS`] before the latest one read (or before now, when
    /// some node's clock runs ahead).
    async fn read_recent_seen(&self, position: &mut Position) -> Result<(), StoreError> {
        if position
            .seen_read
            .is_some_and(|at| at.elapsed() < SEEN_REFRESH)
        {
            return Ok(());
        }
        let sent = Instant::now();
        let now_ms = unix_millis(SystemTime::now());
        let from = position.seen_max.min(now_ms).saturating_sub(SEEN_WINDOW_MS);
        let seen_max = self
            .read_seen(from, |batch| {
                let view = self.read_view();
                for (id, ms) in batch {
                    if let Some(enrolled) = view.instances.get(id) {
                        enrolled.seen(*ms);
                    }
                }
            })
            .await?;
        position.seen_max = position.seen_max.max(seen_max);
        position.seen_read = Some(sent);
        Ok(())
    }

    /// The heartbeats timed `from_ms` or later, in batches by score (a
    /// member a heartbeat moves while this reads only moves up, so it is
    /// read again, never skipped); returns the latest time read.
    async fn read_seen(
        &self,
        from_ms: u64,
        mut each: impl FnMut(&[(String, u64)]),
    ) -> Result<u64, StoreError> {
        let mut from = from_ms;
        // Members at `from` already read, skipped by the next batch.
        let mut skip = 0usize;
        let mut latest = 0;
        loop {
            let mut command = redis::cmd("ZRANGE");
            command
                .arg(SEEN)
                .arg(from)
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(skip)
                .arg(SEEN_BATCH)
                .arg("WITHSCORES");
            let mut c = self.connection.conn();
            let batch: Vec<(String, f64)> = self
                .connection
                .run("fleet heartbeats", async move {
                    command.query_async(&mut c).await
                })
                .await?;
            // Scores are whole ms set by this code; `as` saturates.
            let batch: Vec<(String, u64)> =
                batch.into_iter().map(|(id, ms)| (id, ms as u64)).collect();
            each(&batch);
            let Some(&(_, last)) = batch.last() else {
                return Ok(latest);
            };
            latest = latest.max(last);
            if batch.len() < SEEN_BATCH {
                return Ok(latest);
            }
            let at_last = batch.iter().rev().take_while(|(_, ms)| *ms == last).count();
            skip = if last == from {
                skip + at_last
            } else {
                at_last
            };
            from = last;
        }
    }

    fn read_view(&self) -> RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_view(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The view, if confirmed within [`FLEET_STALENESS`].
    fn fresh_view(&self) -> Result<RwLockReadGuard<'_, View>, StoreError> {
        let view = self.read_view();
        match view.confirmed {
            Some(at) if at.elapsed() < FLEET_STALENESS => Ok(view),
            _ => Err(StoreError::Unavailable(format!(
                "fleet view not confirmed within {FLEET_STALENESS:?}"
            ))),
        }
    }

    /// Reads its own writes at once, before the stream brings them back.
    fn remember(&self, enrollment: Enrollment, seen_ms: u64) {
        let mut view = self.write_view();
        let last_seen = view
            .instances
            .get(&enrollment.instance_id)
            .map_or(0, |known| known.last_seen_ms())
            .max(seen_ms);
        view.instances.insert(
            enrollment.instance_id.clone(),
            Enrolled::new(enrollment, last_seen),
        );
    }

    /// Instance `id` as a fresh view has it, else as Redis does (the view
    /// may lag an enrollment made on another node a moment ago).
    async fn current(&self, id: &str) -> Result<Option<Current>, StoreError> {
        let known = self
            .fresh_view()
            .ok()
            .and_then(|view| view.instances.get(id).cloned());
        if let Some(known) = known {
            return Ok(Some(Current {
                json: encode(&known.enrollment)?,
                enrollment: known.enrollment.clone(),
                last_seen_ms: known.last_seen_ms(),
            }));
        }
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("HGET")
            .arg(INSTANCES)
            .arg(id)
            .cmd("ZSCORE")
            .arg(SEEN)
            .arg(id);
        let mut c = self.connection.conn();
        let (json, seen): (Option<String>, Option<f64>) = self
            .connection
            .run(
                "fleet lookup",
                async move { pipeline.query_async(&mut c).await },
            )
            .await?;
        let Some(json) = json else {
            return Ok(None);
        };
        Ok(Some(Current {
            enrollment: decode_required(id, &json)?,
            json,
            last_seen_ms: seen.map_or(0, |ms| ms as u64),
        }))
    }

    /// Writes `next` over `current` unless the record changed since; a
    /// heartbeat's time moves with it when `seen_ms` is given.
    async fn replace(
        &self,
        current: &Current,
        next: &Enrollment,
        seen_ms: Option<u64>,
    ) -> Result<Replaced, StoreError> {
        let mut invocation = REPLACE.prepare_invoke();
        invocation
            .key(INSTANCES)
            .key(SEEN)
            .key(CHANGES)
            .arg(&next.instance_id)
            .arg(&current.json)
            .arg(encode(next)?)
            .arg(seen_ms.map_or_else(String::new, |ms| ms.to_string()))
            .arg(CHANGES_KEPT);
        let mut c = self.connection.conn();
        let reply: Vec<String> = self
            .connection
            .run("fleet replace", async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        let mut reply = reply.into_iter();
        match (reply.next().as_deref(), reply.next()) {
            (Some("replaced"), _) => Ok(Replaced::Yes),
            (Some("absent"), _) => Ok(Replaced::Absent),
            (Some("changed"), Some(json)) => Ok(Replaced::Changed(Box::new(Current {
                enrollment: decode_required(&next.instance_id, &json)?,
                json,
                last_seen_ms: current.last_seen_ms,
            }))),
            _ => Err(StoreError::Unavailable(
                "redis fleet replace: unexpected reply".into(),
            )),
        }
    }

    fn contended(id: &str) -> StoreError {
        StoreError::Unavailable(format!(
            "instance {id} changed {REPLACE_ATTEMPTS} times while being written"
        ))
    }

    async fn touch(&self, id: &str, now_ms: u64) -> Result<(), StoreError> {
        let mut command = redis::cmd("ZADD");
        command.arg(SEEN).arg("GT").arg(now_ms).arg(id);
        let mut c = self.connection.conn();
        self.connection
            .run("heartbeat", async move {
                command.query_async::<i64>(&mut c).await
            })
            .await?;
        Ok(())
    }
}

fn encode(enrollment: &Enrollment) -> Result<String, StoreError> {
    serde_json::to_string(enrollment)
        .map_err(|e| StoreError::backend("cannot encode enrollment", e))
}

fn encode_token(token: &JoinToken) -> Result<String, StoreError> {
    serde_json::to_string(token).map_err(|e| StoreError::backend("cannot encode join token", e))
}

/// A record read in bulk: one that does not decode is left out (and
/// logged) rather than making the whole fleet unreadable.
fn decode_enrollment(id: &str, json: &[u8]) -> Option<Enrollment> {
    match serde_json::from_slice(json) {
        Ok(enrollment) => Some(enrollment),
        Err(e) => {
            tracing::warn!(instance = id, error = %e, "skipping undecodable fleet record in Redis");
            None
        }
    }
}

fn decode_required(id: &str, json: &str) -> Result<Enrollment, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::backend(format!("fleet record {id} is not an enrollment"), e))
}

fn decode_token(json: &str) -> Result<JoinToken, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::backend("stored join token", e))
}

type Records = Vec<(String, Vec<u8>)>;

/// Sends the instances hash in batches until it ends, an error (sent
/// last) or the receiver goes.
async fn scan_instances(
    connection: RedisConnection,
    batches: tokio::sync::mpsc::Sender<Result<Records, StoreError>>,
) {
    let mut cursor = 0u64;
    loop {
        let mut command = redis::cmd("HSCAN");
        command
            .arg(INSTANCES)
            .arg(cursor)
            .arg("COUNT")
            .arg(SCAN_BATCH);
        let mut c = connection.conn();
        let scanned: Result<(u64, Records), StoreError> = connection
            .run(
                "fleet load",
                async move { command.query_async(&mut c).await },
            )
            .await;
        let (next, records) = match scanned {
            Ok(scanned) => scanned,
            Err(e) => {
                let _ = batches.send(Err(e)).await;
                return;
            }
        };
        if batches.send(Ok(records)).await.is_err() || next == 0 {
            return;
        }
        cursor = next;
    }
}

async fn refresh_while_alive(fleet: Weak<RedisFleet>) {
    let mut tick = tokio::time::interval(FLEET_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let Some(fleet) = fleet.upgrade() else {
            return;
        };
        match fleet.refresh().await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("fleet view up to date again");
            }
            Ok(()) => {}
            // Once per outage, not every interval.
            Err(e) if !failing => {
                failing = true;
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "fleet view not refreshed; refusing fleet reads until it is"
                );
            }
            Err(_) => {}
        }
    }
}

#[async_trait::async_trait]
impl Fleet for RedisFleet {
    async fn create_token(&self, token: JoinToken) -> Result<(), StoreError> {
        let mut command = redis::cmd("HSETNX");
        command
            .arg(TOKENS)
            .arg(&token.id)
            .arg(encode_token(&token)?);
        let mut c = self.connection.conn();
        let created: i64 = self
            .connection
            .run("create join token", async move {
                command.query_async(&mut c).await
            })
            .await?;
        if created == 1 {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "join token {} already exists",
                token.id
            )))
        }
    }

    async fn tokens(&self) -> Result<Vec<JoinToken>, StoreError> {
        let mut tokens = Vec::new();
        let mut cursor = 0u64;
        loop {
            let mut command = redis::cmd("HSCAN");
            command.arg(TOKENS).arg(cursor).arg("COUNT").arg(SCAN_BATCH);
            let mut c = self.connection.conn();
            let (next, batch): (u64, Vec<(String, String)>) = self
                .connection
                .run(
                    "join tokens",
                    async move { command.query_async(&mut c).await },
                )
                .await?;
            for (_, json) in batch {
                tokens.push(decode_token(&json)?);
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // HSCAN may return a field twice.
        tokens.sort_by(|a, b| a.id.cmp(&b.id));
        tokens.dedup_by(|a, b| a.id == b.id);
        Ok(tokens)
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let mut invocation = REVOKE.prepare_invoke();
        invocation.key(TOKENS).arg(id);
        let mut c = self.connection.conn();
        let revoked: i64 = self
            .connection
            .run("revoke join token", async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        Ok(revoked == 1)
    }

    async fn redeem_token(
        &self,
        id: &str,
        secret_sha256: &str,
        now_ms: u64,
    ) -> Result<Result<JoinToken, TokenRefusal>, StoreError> {
        let mut invocation = REDEEM.prepare_invoke();
        invocation
            .key(TOKENS)
            .arg(id)
            .arg(secret_sha256)
            .arg(now_ms);
        let mut c = self.connection.conn();
        let reply: Vec<String> = self
            .connection
            .run("redeem join token", async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        let mut reply = reply.into_iter();
        match (reply.next().as_deref(), reply.next().as_deref()) {
            (Some("redeemed"), Some(json)) => Ok(Ok(decode_token(json)?)),
            (Some("refused"), Some("unknown")) => Ok(Err(TokenRefusal::Unknown)),
            (Some("refused"), Some("revoked")) => Ok(Err(TokenRefusal::Revoked)),
            (Some("refused"), Some("expired")) => Ok(Err(TokenRefusal::Expired)),
            (Some("refused"), Some("used-up")) => Ok(Err(TokenRefusal::UsedUp)),
            _ => Err(StoreError::Unavailable(
                "redis redeem join token: unexpected reply".into(),
            )),
        }
    }

    async fn enroll(&self, enrollment: Enrollment, now_ms: u64) -> Result<(), StoreError> {
        let mut invocation = ENROLL.prepare_invoke();
        invocation
            .key(INSTANCES)
            .key(SEEN)
            .key(CHANGES)
            .arg(&enrollment.instance_id)
            .arg(encode(&enrollment)?)
            .arg(now_ms)
            .arg(CHANGES_KEPT);
        let mut c = self.connection.conn();
        self.connection
            .run("enroll", async move {
                invocation.invoke_async::<i64>(&mut c).await
            })
            .await?;
        self.remember(enrollment, now_ms);
        Ok(())
    }

    async fn heartbeat(
        &self,
        instance_id: &str,
        state: FleetState,
        facts: &MachineFacts,
        now_ms: u64,
    ) -> Result<HeartbeatOutcome, StoreError> {
        // The common case, from the view: nothing to write but the time.
        let known = self
            .fresh_view()
            .ok()
            .and_then(|view| view.instances.get(instance_id).cloned());
        if let Some(known) = &known {
            let stored = &known.enrollment;
            if stored.state == FleetState::Terminated {
                return Ok(HeartbeatOutcome::Terminated);
            }
            if stored.state == state && stored.facts == *facts {
                self.touch(instance_id, now_ms).await?;
                let last_seen_ms = known.last_seen_ms();
                known.seen(now_ms);
                return Ok(HeartbeatOutcome::Recorded {
                    previous: state,
                    last_seen_ms,
                });
            }
        }
        let Some(mut current) = self.current(instance_id).await? else {
            return Ok(HeartbeatOutcome::Unknown);
        };
        for _ in 0..REPLACE_ATTEMPTS {
            let previous = current.enrollment.state;
            if previous == FleetState::Terminated {
                return Ok(HeartbeatOutcome::Terminated);
            }
            let outcome = HeartbeatOutcome::Recorded {
                previous,
                last_seen_ms: current.last_seen_ms,
            };
            if previous == state && current.enrollment.facts == *facts {
                self.touch(instance_id, now_ms).await?;
                return Ok(outcome);
            }
            let mut next = current.enrollment.clone();
            next.state = state;
            next.facts = facts.clone();
            next.updated_at_ms = now_ms;
            match self.replace(&current, &next, Some(now_ms)).await? {
                Replaced::Yes => {
                    self.remember(next, now_ms);
                    return Ok(outcome);
                }
                Replaced::Absent => return Ok(HeartbeatOutcome::Unknown),
                Replaced::Changed(changed) => current = *changed,
            }
        }
        Err(Self::contended(instance_id))
    }

    async fn change(
        &self,
        instance_id: &str,
        change: InstanceChange,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let Some(mut current) = self.current(instance_id).await? else {
            return Ok(false);
        };
        for _ in 0..REPLACE_ATTEMPTS {
            let next = change.applied_to(&current.enrollment, now_ms);
            match self.replace(&current, &next, None).await? {
                Replaced::Yes => {
                    self.remember(next, 0);
                    return Ok(true);
                }
                Replaced::Absent => return Ok(false),
                Replaced::Changed(changed) => current = *changed,
            }
        }
        Err(Self::contended(instance_id))
    }

    fn enrolled(&self, instance_id: &str) -> Result<Option<Arc<Enrolled>>, StoreError> {
        Ok(self.fresh_view()?.instances.get(instance_id).cloned())
    }

    fn all_enrolled(&self) -> Result<Vec<Arc<Enrolled>>, StoreError> {
        Ok(self.fresh_view()?.instances.values().cloned().collect())
    }

    async fn claim_connection_lost(
        &self,
        instance_id: &str,
        last_seen_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut invocation = CLAIM_LOST.prepare_invoke();
        invocation
            .key(LOST_CLAIMS)
            .arg(instance_id)
            .arg(last_seen_ms);
        let mut c = self.connection.conn();
        let claimed: i64 = self
            .connection
            .run("claim a connection loss", async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        Ok(claimed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_for_the_fleet() {
        for key in [INSTANCES, SEEN, CHANGES, TOKENS] {
            assert!(key.starts_with("eic:{fleet}:"), "{key}");
        }
    }
}
