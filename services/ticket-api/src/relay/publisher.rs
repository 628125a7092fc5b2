//! Publishes one outbox event to Redis: appends it to the project's history stream and
//! publishes it on the project's channel, atomically, at most once per seq.

use kanban_protocol::events::EventEnvelope;
use kanban_protocol::redis_keys;
use kanban_redis::Connection;
use redis::{ErrorKind, Script, ScriptInvocation, ServerErrorKind};

/// Skips events at or below the history's last seq (already published: a relay that died
/// between publishing and marking the row re-sends it), so each seq goes out once.
///
/// It also raises the board cache's committed-seq guard (KEYS[2]) to the event's seq, as
/// the writing request did after its commit. That request's raise may have failed (a Redis
/// timeout between commit and response); the relay retries until Redis takes the event, so
/// a cached board is never a hit once the event that outdates it is published.
///
/// ARGV[7] is the publish command: `PUBLISH` on one server, `SPUBLISH` on a cluster, where
/// the channel carries the board's hash tag and so is in the slot of KEYS[1] and KEYS[2]:
/// the whole script runs on the one primary that owns the board.
const PUBLISH: &str = r#"
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last = 0
if #top > 0 then last = tonumber(string.match(top[1][1], '^(%d+)')) end
local seq = tonumber(ARGV[1])
if seq <= last then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], ARGV[1] .. '-0', 'e', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
local committed = tonumber(redis.call('GET', KEYS[2]) or '0')
if seq > committed then redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[6]) end
redis.call(ARGV[7], ARGV[3], ARGV[2])
return 1
"#;

#[derive(Clone)]
pub struct Publisher {
    conn: Connection,
    script: Script,
    prefix: String,
    history_max_len: u64,
    history_ttl_seconds: u64,
    guard_ttl_seconds: u64,
}

impl Publisher {
    /// `guard_ttl_seconds`: the lifetime of the committed-seq guard it raises (the cache's,
    /// [`crate::cache::guard_ttl_seconds`]).
    pub fn new(
        conn: Connection,
        prefix: String,
        history_max_len: u64,
        history_ttl_seconds: u64,
        guard_ttl_seconds: u64,
    ) -> Self {
        Publisher {
            conn,
            script: Script::new(PUBLISH),
            prefix,
            history_max_len,
            history_ttl_seconds,
            guard_ttl_seconds,
        }
    }

    /// Returns whether the event was published now (`false`: it had been already).
    pub async fn publish(&self, envelope: &EventEnvelope) -> Result<bool, redis::RedisError> {
        let mut conn = self.conn.clone();
        let published: i64 = self.invocation(envelope)?.invoke_async(&mut conn).await?;
        Ok(published == 1)
    }

    /// Publishes `envelopes` in one round trip: a pipeline of the publish script, run in
    /// order (one project's events share a hash tag, so on a cluster they go to one node,
    /// in order). Returns for each whether it was published now. If Redis lost its scripts
    /// (a restart, a failover), the script is loaded and the pipeline sent once more:
    /// the script drops what the first attempt had published.
    pub async fn publish_all(
        &self,
        envelopes: &[EventEnvelope],
    ) -> Result<Vec<bool>, redis::RedisError> {
        if envelopes.is_empty() {
            return Ok(Vec::new());
        }
        let invocations = envelopes
            .iter()
            .map(|envelope| self.invocation(envelope))
            .collect::<Result<Vec<_>, _>>()?;
        let mut pipe = redis::pipe();
        for invocation in &invocations {
            pipe.invoke_script(invocation);
        }
        let mut conn = self.conn.clone();
        let published: Vec<i64> = match pipe.query_async(&mut conn).await {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script.load_async(&mut conn).await?;
                pipe.query_async(&mut conn).await?
            }
            answer => answer?,
        };
        Ok(published.into_iter().map(|p| p == 1).collect())
    }

    /// The publish script's call for one event.
    fn invocation(
        &self,
        envelope: &EventEnvelope,
    ) -> Result<ScriptInvocation<'_>, redis::RedisError> {
        let json = serde_json::to_string(envelope).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Client, "encoding event", e.to_string()))
        })?;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(redis_keys::history(&self.prefix, &envelope.project_id))
            .key(redis_keys::committed_seq(
                &self.prefix,
                &envelope.project_id,
            ))
            .arg(envelope.seq)
            .arg(json)
            .arg(redis_keys::events_channel(
                &self.prefix,
                &envelope.project_id,
            ))
            .arg(self.history_max_len)
            .arg(self.history_ttl_seconds)
            .arg(self.guard_ttl_seconds)
            .arg(self.conn.topology().publish_command());
        Ok(invocation)
    }
}
