//! Publishes one outbox event to Redis: appends it to the project's history stream and
//! publishes it on the project's channel, atomically, at most once per seq.

use kanban_protocol::events::EventEnvelope;
use kanban_protocol::redis_keys;
use redis::aio::ConnectionManager;
use redis::Script;

/// Skips events at or below the history's last seq (already published: a relay that died
/// between publishing and marking the row re-sends it), so each seq goes out once.
const PUBLISH: &str = r#"
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last = 0
if #top > 0 then last = tonumber(string.match(top[1][1], '^(%d+)')) end
local seq = tonumber(ARGV[1])
if seq <= last then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], ARGV[1] .. '-0', 'e', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
"#;

#[derive(Clone)]
pub struct Publisher {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
    history_max_len: u64,
    history_ttl_seconds: u64,
}

impl Publisher {
    pub fn new(
        conn: ConnectionManager,
        prefix: String,
        history_max_len: u64,
        history_ttl_seconds: u64,
    ) -> Self {
        Publisher {
            conn,
            script: Script::new(PUBLISH),
            prefix,
            history_max_len,
            history_ttl_seconds,
        }
    }

    /// Returns whether the event was published now (`false`: it had been already).
    pub async fn publish(&self, envelope: &EventEnvelope) -> Result<bool, redis::RedisError> {
        let json = serde_json::to_string(envelope).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Client, "encoding event", e.to_string()))
        })?;
        let mut conn = self.conn.clone();
        let published: i64 = self
            .script
            .key(redis_keys::history(&self.prefix, &envelope.project_id))
            .arg(envelope.seq)
            .arg(json)
            .arg(redis_keys::events_channel(
                &self.prefix,
                &envelope.project_id,
            ))
            .arg(self.history_max_len)
            .arg(self.history_ttl_seconds)
            .invoke_async(&mut conn)
            .await?;
        Ok(published == 1)
    }
}
