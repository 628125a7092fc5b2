//! Cache-aside board snapshots in Redis, with a read-your-writes guard.
//!
//! After every commit the API raises the project's committed-seq key to the new seq
//! before it answers the client. A cached board counts as a hit only when its seq is at
//! least that key, and a board read from Postgres is stored only if it is not older than
//! what is cached. So once a write has been answered, no reader gets a board without it.
//! The cached entry carries the members, so a hit needs no SQL at all (not even for the
//! membership check).
//!
//! If raising the guard fails after a commit (Redis slow or briefly unreachable), the
//! relay raises it when it publishes the event (`relay::publisher`), retrying until Redis
//! takes it: a stale board is served at most until the event that outdates it is
//! published, never for the cache TTL.

use kanban_protocol::redis_keys;
use kanban_redis::Connection;
use redis::Script;

/// What is cached per project (its shape is the protocol crate's).
pub use kanban_protocol::redis_keys::CachedBoard;

/// Raises the committed-seq key to ARGV[1] (never lowers it).
const BUMP: &str = r#"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return 1
"#;

/// Stores the board (ARGV[2], seq ARGV[1]) unless the committed seq is already newer.
const PUT: &str = r#"
local committed = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < committed then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"#;

/// How long the committed-seq guard outlives the cache entries it guards.
const GUARD_TTL_FACTOR: u64 = 10;

/// The lifetime of the committed-seq guard for cache entries living `ttl_seconds`.
pub fn guard_ttl_seconds(ttl_seconds: u64) -> u64 {
    ttl_seconds.saturating_mul(GUARD_TTL_FACTOR).max(60)
}

#[derive(Clone)]
pub struct BoardCache {
    conn: Connection,
    prefix: String,
    ttl_seconds: u64,
    bump: Script,
    put: Script,
}

/// The result of a cache lookup.
pub enum Lookup {
    Hit(CachedHit),
    Miss,
}

/// A cached board as a hit serves it: the snapshot's JSON exactly as it was stored (the
/// bytes `serde_json` wrote for the `BoardSnapshot`, so it is answered without being
/// decoded and encoded again) and the members, for the access check.
pub struct CachedHit {
    pub snapshot_json: String,
    pub members: std::collections::HashMap<String, kanban_protocol::MemberRole>,
}

/// A stored [`CachedBoard`], read without decoding its snapshot.
#[derive(serde::Deserialize)]
struct StoredBoard<'a> {
    #[serde(borrow)]
    snapshot: &'a serde_json::value::RawValue,
    members: std::collections::HashMap<String, kanban_protocol::MemberRole>,
}

/// The one field of a snapshot the freshness check needs.
#[derive(serde::Deserialize)]
struct SnapshotSeq {
    seq: i64,
}

impl BoardCache {
    pub fn new(conn: Connection, prefix: String, ttl_seconds: u64) -> Self {
        BoardCache {
            conn,
            prefix,
            ttl_seconds,
            bump: Script::new(BUMP),
            put: Script::new(PUT),
        }
    }

    pub async fn get(&self, project_id: &str) -> Result<Lookup, redis::RedisError> {
        let mut conn = self.conn.clone();
        let (seq, board): (Option<i64>, Option<String>) = redis::cmd("MGET")
            .arg(redis_keys::committed_seq(&self.prefix, project_id))
            .arg(redis_keys::board(&self.prefix, project_id))
            .query_async(&mut conn)
            .await?;
        let Some(board) = board else {
            return Ok(Lookup::Miss);
        };
        // An entry that does not read as a board is a miss (and is overwritten).
        let Ok(stored) = serde_json::from_str::<StoredBoard<'_>>(&board) else {
            return Ok(Lookup::Miss);
        };
        let Ok(SnapshotSeq { seq: cached_seq }) = serde_json::from_str(stored.snapshot.get())
        else {
            return Ok(Lookup::Miss);
        };
        if cached_seq < seq.unwrap_or(0) {
            return Ok(Lookup::Miss);
        }
        Ok(Lookup::Hit(CachedHit {
            snapshot_json: stored.snapshot.get().to_owned(),
            members: stored.members,
        }))
    }

    /// Stores a board read from Postgres; returns whether it was stored.
    pub async fn put(&self, board: &CachedBoard) -> Result<bool, redis::RedisError> {
        let project_id = &board.snapshot.project.id;
        let json = serde_json::to_string(board).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Client, "encoding board", e.to_string()))
        })?;
        let mut conn = self.conn.clone();
        let stored: i64 = self
            .put
            .key(redis_keys::committed_seq(&self.prefix, project_id))
            .key(redis_keys::board(&self.prefix, project_id))
            .arg(board.snapshot.seq)
            .arg(json)
            .arg(self.ttl_seconds)
            .invoke_async(&mut conn)
            .await?;
        Ok(stored == 1)
    }

    /// Records that `seq` is committed: cached boards older than it stop being hits.
    pub async fn invalidate(&self, project_id: &str, seq: i64) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .bump
            .key(redis_keys::committed_seq(&self.prefix, project_id))
            .arg(seq)
            .arg(guard_ttl_seconds(self.ttl_seconds))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}
