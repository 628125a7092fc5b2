//! The Redis connection both services use: to one server or to a Redis Cluster, chosen by
//! [`RedisSettings`] alone, behind one type that runs any command, script or pipeline,
//! with the publish and subscribe verbs that go with each topology.
//!
//! On one server, events travel on classic pub/sub (`PUBLISH` / `SUBSCRIBE`), as they
//! always have. On a cluster they travel on sharded pub/sub (`SPUBLISH` / `SSUBSCRIBE`,
//! Redis 7): a message goes only to the shard that owns its channel's slot instead of to
//! every node, so pub/sub load divides across shards. Every key and channel of one board
//! carries the board's id as a hash tag (`kanban_protocol::redis_keys`), so one board
//! lives in one slot: its scripts, pipelines and subscriptions each go to one node.
//!
//! The cluster client is redis-rs's `cluster-async`: it follows `MOVED`/`ASK` redirects,
//! refreshes its slot map when the cluster changes, and (with a push sender) resubscribes
//! every tracked sharded channel on the node that owns its slot after a reconnect or a
//! topology change. What it cannot know is whether a channel that a node dropped (a slot
//! migrated away: the server sends `sunsubscribe`) is still wanted; the gateway's broker
//! decides that and subscribes again.

use kanban_config::RedisSettings;
use redis::aio::{AsyncPushSender, ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use secrecy::ExposeSecret;
use std::time::Duration;

/// Which kind of deployment the settings point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One Redis server (`redis.url`).
    Single,
    /// A Redis Cluster (`redis.cluster_nodes`, any few of its nodes).
    Cluster,
}

impl Topology {
    pub fn of(settings: &RedisSettings) -> Topology {
        if settings.cluster_nodes.is_empty() {
            Topology::Single
        } else {
            Topology::Cluster
        }
    }

    /// The command that publishes on a board's channel: `PUBLISH` on one server,
    /// `SPUBLISH` on a cluster (the message stays inside the shard of the channel's slot).
    pub fn publish_command(self) -> &'static str {
        match self {
            Topology::Single => "PUBLISH",
            Topology::Cluster => "SPUBLISH",
        }
    }

    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Single => "single",
            Topology::Cluster => "cluster",
        }
    }
}

/// How a connection behaves when Redis goes away.
#[derive(Debug, Clone, Copy)]
pub struct Reconnect {
    /// Attempts per command before it fails (the connection itself keeps trying).
    pub retries: usize,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            retries: 1,
            max_delay: Duration::from_millis(500),
        }
    }
}

/// A self-reconnecting, multiplexed connection to one server or to a whole cluster.
/// Cheap to clone: clones share the connection(s).
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Opens a connection for commands, lazily: the service starts (and keeps answering what
/// needs no Redis) while Redis is down.
pub fn connect(settings: &RedisSettings, reconnect: Reconnect) -> RedisResult<Connection> {
    open(
        settings,
        reconnect,
        None::<fn(redis::PushInfo) -> Result<(), ()>>,
    )
}

/// Opens a RESP3 connection for subscriptions, lazily. Every pushed message, subscription
/// confirmation and disconnection goes to `pushes`; the connection subscribes again to
/// what it held after it reconnects (and, on a cluster, on the node that now owns each
/// channel's slot).
pub fn connect_subscriber(
    settings: &RedisSettings,
    reconnect: Reconnect,
    pushes: impl AsyncPushSender,
) -> RedisResult<Connection> {
    open(settings, reconnect, Some(pushes))
}

fn open(
    settings: &RedisSettings,
    reconnect: Reconnect,
    pushes: Option<impl AsyncPushSender>,
) -> RedisResult<Connection> {
    let response_timeout = Duration::from_millis(settings.response_timeout_ms);
    let connect_timeout = Duration::from_millis(settings.connect_timeout_ms);
    match Topology::of(settings) {
        Topology::Single => {
            let mut url = settings.url.expose_secret().to_owned();
            if pushes.is_some() && !url.contains("protocol=") {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str("protocol=resp3");
            }
            let client = redis::Client::open(url)?;
            let mut config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(connect_timeout))
                .set_number_of_retries(reconnect.retries)
                .set_max_delay(reconnect.max_delay);
            if let Some(pushes) = pushes {
                config = config
                    .set_push_sender(pushes)
                    .set_automatic_resubscription();
            }
            Ok(Connection::Single(
                client.get_connection_manager_lazy(config)?,
            ))
        }
        Topology::Cluster => {
            let nodes: Vec<String> = settings
                .cluster_nodes
                .iter()
                .map(|node| node.expose_secret().to_owned())
                .collect();
            let mut builder = ClusterClientBuilder::new(nodes)
                .retries(reconnect.retries.try_into().unwrap_or(u32::MAX))
                .max_retry_wait(
                    reconnect
                        .max_delay
                        .as_millis()
                        .try_into()
                        .unwrap_or(u64::MAX),
                )
                .connection_timeout(connect_timeout)
                .response_timeout(response_timeout);
            let mut config = ClusterConfig::new()
                .set_connection_timeout(connect_timeout)
                .set_response_timeout(response_timeout);
            if let Some(pushes) = pushes {
                builder = builder.use_protocol(redis::ProtocolVersion::RESP3);
                config = config.set_push_sender(pushes);
            }
            let client = builder.build()?;
            Ok(Connection::Cluster(
                client.get_pending_async_connection_with_config(config),
            ))
        }
    }
}

impl Connection {
    pub fn topology(&self) -> Topology {
        match self {
            Connection::Single(_) => Topology::Single,
            Connection::Cluster(_) => Topology::Cluster,
        }
    }

    /// Subscribes to `channels` (one board's: one slot): `SUBSCRIBE` on one server,
    /// `SSUBSCRIBE` on a cluster. Only on a connection from [`connect_subscriber`].
    pub async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Connection::Single(conn) => conn.subscribe(channels).await,
            Connection::Cluster(conn) => conn.ssubscribe(channels).await,
        }
    }

    /// Unsubscribes from `channels`: `UNSUBSCRIBE`, or `SUNSUBSCRIBE` on a cluster.
    pub async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Connection::Single(conn) => conn.unsubscribe(channels).await,
            Connection::Cluster(conn) => conn.sunsubscribe(channels).await,
        }
    }
}

/// One shard of a cluster: the primary that serves it and its slot ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// `host:port` of the primary, as the cluster announces it.
    pub primary: String,
    /// Inclusive slot ranges, lowest first.
    pub slots: Vec<(u16, u16)>,
}

impl Shard {
    pub fn holds(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|(start, end)| (*start..=*end).contains(&slot))
    }
}

impl Connection {
    /// The cluster's shards as one of its nodes sees them (`CLUSTER SLOTS`); empty on a
    /// single server.
    pub async fn shards(&mut self) -> RedisResult<Vec<Shard>> {
        if self.topology() == Topology::Single {
            return Ok(Vec::new());
        }
        let reply: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(self).await?;
        Ok(parse_cluster_slots(&reply))
    }

    /// PING to one node of a cluster, by its `host:port` (on a single server: the server).
    pub async fn ping_node(&mut self, node: &str) -> RedisResult<()> {
        let ping = redis::cmd("PING");
        match self {
            Connection::Single(conn) => ping.query_async::<()>(conn).await,
            Connection::Cluster(conn) => {
                let (host, port) = node.rsplit_once(':').ok_or_else(|| {
                    redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "a node address is host:port",
                        node.to_owned(),
                    ))
                })?;
                let port = port.parse::<u16>().map_err(|e| {
                    redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "a node address is host:port",
                        e.to_string(),
                    ))
                })?;
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.to_owned(),
                    port,
                });
                conn.route_command(ping, routing).await.map(drop)
            }
        }
    }
}

/// The shards in a `CLUSTER SLOTS` reply (ranges grouped by primary, sorted by their
/// first slot); entries that are not ranges are skipped.
pub fn parse_cluster_slots(reply: &Value) -> Vec<Shard> {
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let mut shards: Vec<Shard> = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let slot = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => u16::try_from(*n).ok(),
            _ => None,
        };
        let (Some(start), Some(end), Some(Value::Array(primary))) =
            (slot(fields.first()), slot(fields.get(1)), fields.get(2))
        else {
            continue;
        };
        if start > end || end >= SLOTS {
            continue;
        }
        let host = match primary.first() {
            Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
            Some(Value::SimpleString(host)) => host.clone(),
            _ => continue,
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            continue;
        };
        let address = format!("{host}:{port}");
        match shards.iter_mut().find(|s| s.primary == address) {
            Some(shard) => shard.slots.push((start, end)),
            None => shards.push(Shard {
                primary: address,
                slots: vec![(start, end)],
            }),
        }
    }
    for shard in &mut shards {
        shard.slots.sort_unstable();
    }
    shards.sort_by_key(|s| s.slots.first().copied());
    shards
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// The cluster slot of a key or channel: CRC16 (XMODEM) of its hash tag (the text between
/// the first `{` and the next `}`, if not empty), or of the whole name.
pub fn slot(name: &str) -> u16 {
    let bytes = name.as_bytes();
    let tag = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(bytes);
    crc16::State::<crc16::XMODEM>::calculate(tag) % SLOTS
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn the_topology_follows_the_seed_list() {
        let mut settings = RedisSettings::default();
        assert_eq!(Topology::of(&settings), Topology::Single);
        assert_eq!(Topology::Single.publish_command(), "PUBLISH");
        settings.cluster_nodes = vec![SecretString::from("redis://127.0.0.1:7000".to_owned())];
        assert_eq!(Topology::of(&settings), Topology::Cluster);
        assert_eq!(Topology::Cluster.publish_command(), "SPUBLISH");
    }

    /// The slots Redis itself computes (`CLUSTER KEYSLOT`): a hash tag decides, so every
    /// key of a board is in one slot.
    #[test]
    fn slots_are_those_redis_computes() {
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("kanban:{p1}:events"), slot("kanban:{p1}:history"));
        assert_eq!(slot("kanban:{p1}:events"), slot("p1"));
        assert_eq!(
            slot("a{}b"),
            slot("a{}b"),
            "an empty tag hashes the whole name"
        );
        assert_ne!(slot("a{}b"), slot(""));
    }

    #[tokio::test]
    async fn connecting_is_lazy_in_both_topologies() {
        let mut settings = RedisSettings {
            url: SecretString::from("redis://127.0.0.1:1".to_owned()),
            ..RedisSettings::default()
        };
        assert!(connect(&settings, Reconnect::default()).is_ok());
        settings.cluster_nodes = vec![SecretString::from("redis://127.0.0.1:1".to_owned())];
        let conn = connect(&settings, Reconnect::default()).unwrap();
        assert_eq!(conn.topology(), Topology::Cluster);
    }

    fn node(host: &str, port: i64, id: &str) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(id.as_bytes().to_vec()),
        ])
    }

    #[test]
    fn cluster_slots_are_grouped_by_primary() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(10923),
                Value::Int(16383),
                node("127.0.0.1", 7002, "c"),
                node("127.0.0.1", 7005, "f"),
            ]),
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000, "a"),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("127.0.0.1", 7001, "b"),
            ]),
            Value::Array(vec![
                Value::Int(16384),
                Value::Int(0),
                node("127.0.0.1", 7001, "b"),
            ]),
            Value::Array(vec![Value::Int(1), Value::Nil]),
            Value::Int(3),
        ]);
        let shards = parse_cluster_slots(&reply);
        assert_eq!(
            shards,
            vec![
                Shard {
                    primary: "127.0.0.1:7000".into(),
                    slots: vec![(0, 5460)]
                },
                Shard {
                    primary: "127.0.0.1:7001".into(),
                    slots: vec![(5461, 10922)]
                },
                Shard {
                    primary: "127.0.0.1:7002".into(),
                    slots: vec![(10923, 16383)]
                },
            ],
            "an out-of-range slot and malformed entries are skipped"
        );
        assert!(shards[1].holds(5461) && shards[1].holds(10922) && !shards[1].holds(0));
        assert!(parse_cluster_slots(&Value::Nil).is_empty());
    }

    #[tokio::test]
    async fn a_node_address_must_be_host_and_port() {
        let settings = RedisSettings {
            cluster_nodes: vec![SecretString::from("redis://127.0.0.1:1".to_owned())],
            ..RedisSettings::default()
        };
        let mut conn = connect(&settings, Reconnect::default()).unwrap();
        let error = conn.ping_node("no-port").await.unwrap_err();
        assert!(error.to_string().contains("host:port"), "{error}");
        let error = conn.ping_node("host:notaport").await.unwrap_err();
        assert!(error.to_string().contains("host:port"), "{error}");
    }

    #[test]
    fn a_bad_seed_is_a_clear_error() {
        let settings = RedisSettings {
            cluster_nodes: vec![SecretString::from("not a url".to_owned())],
            ..RedisSettings::default()
        };
        assert!(connect(&settings, Reconnect::default()).is_err());
    }
}
