//! The Redis layout shared by the ticket API (which writes it) and the gateways (which read
//! it). Every key of one project carries the project id as a hash tag (`{<id>}`), so that
//! one project's keys live in one Redis Cluster slot and a Lua script may touch them together.
//!
//! | key | type | written by | contents |
//! |---|---|---|---|
//! | `<prefix>:{<id>}:events` | pub/sub channel | API relay | one JSON [`EventEnvelope`](crate::events::EventEnvelope) per committed event, in `seq` order |
//! | `<prefix>:{<id>}:history` | stream | API relay | the same envelopes, entry id `<seq>-0`, field `e`; capped by count, expires when idle |
//! | `<prefix>:{<id>}:seq` | string | API after commit | highest committed `seq` known to the cache (read-your-writes guard) |
//! | `<prefix>:{<id>}:board` | string | API on cache miss | cached board snapshot and members (JSON), with TTL |

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

/// The cached board snapshot.
pub fn board(prefix: &str, project_id: &str) -> String {
    format!("{prefix}:{{{project_id}}}:board")
}

/// The project id in a channel name made by [`events_channel`].
pub fn project_of_channel<'a>(prefix: &str, channel: &'a str) -> Option<&'a str> {
    channel
        .strip_prefix(prefix)?
        .strip_prefix(":{")?
        .strip_suffix("}:events")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_project_as_a_hash_tag() {
        assert_eq!(events_channel("kanban", "p1"), "kanban:{p1}:events");
        assert_eq!(history("kanban", "p1"), "kanban:{p1}:history");
        assert_eq!(committed_seq("kanban", "p1"), "kanban:{p1}:seq");
        assert_eq!(board("kanban", "p1"), "kanban:{p1}:board");
    }

    #[test]
    fn channel_names_parse_back_to_the_project() {
        assert_eq!(
            project_of_channel("kanban", &events_channel("kanban", "abc")),
            Some("abc")
        );
        assert_eq!(project_of_channel("kanban", "kanban:{abc}:history"), None);
        assert_eq!(project_of_channel("other", "kanban:{abc}:events"), None);
    }
}
