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

use kanban_protocol::redis_keys::{self, snapshot_fields};
use kanban_protocol::MemberRole;
use kanban_redis::Connection;
use redis::Script;
use std::collections::HashMap;

/// What is cached per project (its shape is the protocol crate's).
pub use kanban_protocol::redis_keys::CachedBoard;

/// Raises the committed-seq key to ARGV[1] (never lowers it).
const BUMP: &str = r#"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return 1
"#;

/// Stores the board (seq ARGV[1], members ARGV[2], snapshot ARGV[3], for ARGV[4] seconds)
/// unless the committed seq is already newer. The field names are
/// `redis_keys::snapshot_fields`.
const PUT: &str = r#"
local committed = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < committed then return 0 end
redis.call('HSET', KEYS[2], 'seq', ARGV[1], 'members', ARGV[2], 'snapshot', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
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
/// bytes `serde_json` wrote for the `BoardSnapshot`, answered without being decoded,
/// scanned or copied) and the members, for the access check.
pub struct CachedHit {
    pub snapshot_json: Vec<u8>,
    pub members: HashMap<String, MemberRole>,
}

/// A board read from Postgres, encoded once: for the cache and for the response.
pub struct EncodedBoard {
    pub project_id: String,
    pub seq: i64,
    pub members_json: Vec<u8>,
    pub snapshot_json: Vec<u8>,
}

impl EncodedBoard {
    pub fn of(board: &CachedBoard) -> Result<EncodedBoard, serde_json::Error> {
        Ok(EncodedBoard {
            project_id: board.snapshot.project.id.clone(),
            seq: board.snapshot.seq,
            members_json: serde_json::to_vec(&board.members)?,
            snapshot_json: serde_json::to_vec(&board.snapshot)?,
        })
    }
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

    /// The cached board if it holds every committed event: one round trip (the committed
    /// seq and the entry's three fields), and no JSON but the members is decoded. An entry
    /// that does not read as a board is a miss (and is overwritten).
    pub async fn get(&self, project_id: &str) -> Result<Lookup, redis::RedisError> {
        let mut conn = self.conn.clone();
        let (committed, fields): (Option<i64>, Vec<Option<Vec<u8>>>) = redis::pipe()
            .cmd("GET")
            .arg(redis_keys::committed_seq(&self.prefix, project_id))
            .cmd("HMGET")
            .arg(redis_keys::snapshot(&self.prefix, project_id))
            .arg(snapshot_fields::SEQ)
            .arg(snapshot_fields::MEMBERS)
            .arg(snapshot_fields::SNAPSHOT)
            .query_async(&mut conn)
            .await?;
        let Ok([Some(seq), Some(members), Some(snapshot)]) = <[_; 3]>::try_from(fields) else {
            return Ok(Lookup::Miss);
        };
        let Some(seq) = std::str::from_utf8(&seq)
            .ok()
            .and_then(|seq| seq.parse::<i64>().ok())
        else {
            return Ok(Lookup::Miss);
        };
        let Ok(members) = serde_json::from_slice(&members) else {
            return Ok(Lookup::Miss);
        };
        if seq < committed.unwrap_or(0) {
            return Ok(Lookup::Miss);
        }
        Ok(Lookup::Hit(CachedHit {
            snapshot_json: snapshot,
            members,
        }))
    }

    /// Stores a board read from Postgres; returns whether it was stored.
    pub async fn put(&self, board: &EncodedBoard) -> Result<bool, redis::RedisError> {
        let mut conn = self.conn.clone();
        let stored: i64 = self
            .put
            .key(redis_keys::committed_seq(&self.prefix, &board.project_id))
            .key(redis_keys::snapshot(&self.prefix, &board.project_id))
            .arg(board.seq)
            .arg(&board.members_json[..])
            .arg(&board.snapshot_json[..])
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
