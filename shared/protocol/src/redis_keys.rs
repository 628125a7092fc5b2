//! The Redis layout shared by the ticket API and the gateways: every key and channel name,
//! and the one parser that maps a channel name back to its kind and project.
//!
//! Every key of one project carries the project id as a hash tag (`{<id>}`), so that one
//! project's keys live in one Redis Cluster slot and a Lua script may touch them together.
//!
//! | key | type | written by | contents |
//! |---|---|---|---|
//! | `<prefix>:{<id>}:events` | pub/sub channel | API relay | one JSON [`EventEnvelope`](crate::events::EventEnvelope) per committed event, in `seq` order |
//! | `<prefix>:{<id>}:history` | stream | API relay | the same envelopes, entry id `<seq>-0`, field `e`; capped by count, expires when idle |
//! | `<prefix>:{<id>}:seq` | string | API after commit | highest committed `seq` known to the cache (read-your-writes guard) |
//! | `<prefix>:{<id>}:snapshot` | hash | API on cache miss | the cached board, with TTL; fields ([`snapshot_fields`]): `seq`, the snapshot's seq; `members`, JSON user id → [`MemberRole`](crate::MemberRole); `snapshot`, the [`BoardSnapshot`](crate::BoardSnapshot)'s JSON, answered as it is |
//! | `<prefix>:{<id>}:presence` | hash | gateways | field: replica id, value: JSON list of [`PresentUser`](crate::socket::PresentUser) |
//! | `<prefix>:{<id>}:presence` | pub/sub channel | gateways | a replica's id, after it changed its field |
//! | `<prefix>:{<id>}:hints` | pub/sub channel | gateways | one JSON [`Hint`](crate::socket::Hint) per message, never stored |
//! | `<prefix>:{<prefix>:replicas}:<replica>` | string | each gateway | the replica's heartbeat, with a short TTL |
//!
//! The heartbeats of all replicas share one hash tag of their own, so that one `MGET`
//! reads them together on a Redis Cluster too (a handful of tiny keys, in one slot). On a
//! single server, replicas also write and read the untagged key of earlier versions,
//! `<prefix>:presence:replica:<replica>` ([`untagged_replica_heartbeat`]), so that old and
//! new replicas see each other during a rolling upgrade.

/// A board as the cache stores it: its snapshot and who may read it, so that a cache hit
/// can answer a read (and refuse a non-member) without Postgres. Stored as the fields of
/// the [`snapshot`] hash ([`snapshot_fields`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CachedBoard {
    pub snapshot: crate::BoardSnapshot,
    /// user id → role.
    pub members: std::collections::HashMap<String, crate::MemberRole>,
}

/// The pub/sub channel carrying a project's events.
pub fn events_channel(prefix: &str, project_id: &str) -> String {
    format!("{prefix}:{{{project_id}}}:events")
}

/// The pattern matching every project's event channel (for `PSUBSCRIBE`).
pub fn events_channel_pattern(prefix: &str) -> String {
    format!("{prefix}:{{*}}:events")
}

/// The stream holding a project's recent events, entry ids `<seq>-0`.
pub fn history(prefix: &str, project_id: &str) -> String {
    format!("{prefix}:{{{project_id}}}:history")
}

/// The highest committed seq the board cache must reflect.
pub fn committed_seq(prefix: &str, project_id: &str) -> String {
    format!("{prefix}:{{{project_id}}}:seq")
}

/// The cached board: a hash of [`snapshot_fields`]. (Versions before it stored one JSON
/// [`CachedBoard`] string under `<prefix>:{<id>}:board`, which expires by its TTL.)
pub fn snapshot(prefix: &str, project_id: &str) -> String {
    format!("{prefix}:{{{project_id}}}:snapshot")
}

/// The fields of the [`snapshot`] hash. They are written together, so a hit reads the
/// seq and the members without decoding the snapshot and answers the snapshot's bytes.
pub mod snapshot_fields {
    /// The snapshot's seq, a decimal integer.
    pub const SEQ: &str = "seq";
    /// JSON object: user id → role.
    pub const MEMBERS: &str = "members";
    /// The `BoardSnapshot`'s JSON.
    pub const SNAPSHOT: &str = "snapshot";
}

/// The presence hash of a project, one field per gateway replica. The same name is the
/// pub/sub channel on which a replica announces that it changed its field.
pub fn presence(prefix: &str, project_id: &str) -> String {
    format!("{prefix}:{{{project_id}}}:presence")
}

/// The pub/sub channel of a project's ephemeral "who is dragging / editing" hints.
pub fn hints_channel(prefix: &str, project_id: &str) -> String {
    format!("{prefix}:{{{project_id}}}:hints")
}

/// A gateway replica's heartbeat key. Every replica's is in one slot (the hash tag
/// `{<prefix>:replicas}`), so that one `MGET` reads them together on a cluster too.
pub fn replica_heartbeat(prefix: &str, replica: &str) -> String {
    format!("{prefix}:{{{prefix}:replicas}}:{replica}")
}

/// The heartbeat key of gateway versions before [`replica_heartbeat`] (no hash tag). On a
/// single Redis server it is written and read beside the tagged one, so that replicas of
/// both versions count each other as alive during a rolling upgrade; on a cluster it is
/// not used.
pub fn untagged_replica_heartbeat(prefix: &str, replica: &str) -> String {
    format!("{prefix}:presence:replica:{replica}")
}

/// The kinds of per-project pub/sub channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// [`events_channel`]: event envelopes.
    Events,
    /// [`presence`]: a replica changed its presence field.
    Presence,
    /// [`hints_channel`]: ephemeral hints.
    Hints,
}

/// The kind and project of a channel name made by [`events_channel`], [`presence`] or
/// [`hints_channel`] with this `prefix`.
pub fn parse_channel<'a>(prefix: &str, channel: &'a str) -> Option<(Channel, &'a str)> {
    let rest = channel.strip_prefix(prefix)?.strip_prefix(":{")?;
    let (project, suffix) = rest.rsplit_once("}:")?;
    let kind = match suffix {
        "events" => Channel::Events,
        "presence" => Channel::Presence,
        "hints" => Channel::Hints,
        _ => return None,
    };
    Some((kind, project))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_project_as_a_hash_tag() {
        assert_eq!(events_channel("kanban", "p1"), "kanban:{p1}:events");
        assert_eq!(history("kanban", "p1"), "kanban:{p1}:history");
        assert_eq!(committed_seq("kanban", "p1"), "kanban:{p1}:seq");
        assert_eq!(snapshot("kanban", "p1"), "kanban:{p1}:snapshot");
        assert_eq!(presence("kanban", "p1"), "kanban:{p1}:presence");
        assert_eq!(hints_channel("kanban", "p1"), "kanban:{p1}:hints");
        assert_eq!(
            replica_heartbeat("kanban", "r1"),
            "kanban:{kanban:replicas}:r1"
        );
        assert_eq!(
            untagged_replica_heartbeat("kanban", "r1"),
            "kanban:presence:replica:r1"
        );
    }

    #[test]
    fn channel_names_parse_back_to_their_kind_and_project() {
        assert_eq!(
            parse_channel("kanban", &events_channel("kanban", "abc")),
            Some((Channel::Events, "abc"))
        );
        assert_eq!(
            parse_channel("kanban", &presence("kanban", "abc")),
            Some((Channel::Presence, "abc"))
        );
        assert_eq!(
            parse_channel("kanban", &hints_channel("kanban", "abc")),
            Some((Channel::Hints, "abc"))
        );
    }

    #[test]
    fn other_names_are_not_channels() {
        assert_eq!(parse_channel("kanban", "kanban:{abc}:history"), None);
        assert_eq!(parse_channel("kanban", "kanban:{abc}:board"), None);
        assert_eq!(parse_channel("other", "kanban:{abc}:events"), None);
        assert_eq!(parse_channel("kanban", "kanban:abc:events"), None);
        assert_eq!(parse_channel("kanban", "kanban:{kanban:replicas}:r1"), None);
        // A prefix that is itself a prefix of another one does not match it.
        assert_eq!(parse_channel("kan", "kanban:{abc}:events"), None);
    }
}
