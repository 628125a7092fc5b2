//! The Redis Cluster's shards as this gateway sees them, as metrics: every [`INTERVAL`],
//! the slot map, a PING to each shard's primary, and how many of this gateway's boards
//! each shard holds. Nothing runs on a single Redis server.
//!
//! It is also a safety net for the subscriptions: a board whose slot is served by another
//! primary than at the previous probe (a failover, a migration) is subscribed again and
//! its room caught up, whether or not the push that normally triggers that (a
//! disconnection, a `sunsubscribe`) reached the broker; and so is a board whose room has
//! not received, by one probe, an event its history gained before the previous one
//! (whatever lost the subscription).

use crate::broker::Broker;
use crate::metrics::GatewayMetrics;
use futures_util::StreamExt;
use kanban_redis::{Connection, Shard};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the shards are probed.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// History heads read at once by a probe (one `XREVRANGE … COUNT 1` per held board).
const HEAD_READS_IN_FLIGHT: usize = 32;

/// Probes the cluster's shards until the broker is dropped.
pub fn spawn(broker: &Arc<Broker>, metrics: Arc<GatewayMetrics>) {
    let conn = broker.command_connection();
    tokio::spawn(run(Arc::downgrade(broker), conn, metrics));
}

async fn run(broker: Weak<Broker>, conn: Connection, metrics: Arc<GatewayMetrics>) {
    // Primary address → whether it answered the last probe.
    let mut up: HashMap<String, bool> = HashMap::new();
    // Board → the primary that served it at the last probe.
    let mut owners: HashMap<String, String> = HashMap::new();
    // Board → its history's head at the last probe.
    let mut heads: HashMap<String, Head> = HashMap::new();
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let shards = match conn.clone().shards().await {
            Ok(shards) if !shards.is_empty() => shards,
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%error, "reading the Redis Cluster's slot map failed");
                continue;
            }
        };
        let projects = broker.subscribed_projects();
        let held = boards_per_shard(&shards, &projects);
        for project in moved_boards(&mut owners, &shards, &projects) {
            tracing::info!(project.id = %project, "the board's slot is served by another primary; subscribing again");
            broker.resubscribe_board(project.into());
        }
        revive_stalled_rooms(&broker, &mut heads, &projects).await;
        drop(broker);
        for (shard, boards) in shards.iter().zip(held) {
            let answered = conn.clone().ping_node(&shard.primary).await.is_ok();
            let label = [shard.primary.as_str()];
            if answered && up.get(&shard.primary) == Some(&false) {
                metrics
                    .redis_shard_reconnects_total
                    .with_label_values(&label)
                    .inc();
            }
            if !answered && up.get(&shard.primary) != Some(&false) {
                tracing::warn!(shard = %shard.primary, "a Redis Cluster primary does not answer");
            }
            up.insert(shard.primary.clone(), answered);
            metrics
                .redis_shard_up
                .with_label_values(&label)
                .set(i64::from(answered));
            metrics
                .redis_shard_subscriptions
                .with_label_values(&label)
                .set(boards as i64);
        }
        // A primary that serves no slot any more (failed over, emptied by a reshard):
        // its series go, so that dashboards do not show it as down for ever.
        up.retain(|primary, _| {
            let kept = shards.iter().any(|s| &s.primary == primary);
            if !kept {
                let label = [primary.as_str()];
                let _ = metrics.redis_shard_up.remove_label_values(&label);
                let _ = metrics
                    .redis_shard_subscriptions
                    .remove_label_values(&label);
                let _ = metrics
                    .redis_shard_reconnects_total
                    .remove_label_values(&label);
            }
            kept
        });
    }
}

/// The boards of `projects` whose slot another primary serves than in `owners` (the last
/// probe's); `owners` becomes this probe's, for `projects` only.
fn moved_boards(
    owners: &mut HashMap<String, String>,
    shards: &[Shard],
    projects: &[String],
) -> Vec<String> {
    let mut now = HashMap::with_capacity(projects.len());
    let mut moved = Vec::new();
    for project in projects {
        let slot = kanban_redis::slot(project);
        let Some(shard) = shards.iter().find(|s| s.holds(slot)) else {
            continue;
        };
        if owners
            .get(project)
            .is_some_and(|before| *before != shard.primary)
        {
            moved.push(project.clone());
        }
        now.insert(project.clone(), shard.primary.clone());
    }
    *owners = now;
    moved
}

/// A board's history head as one probe saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Head {
    seq: i64,
    /// The history gained events since the probe before (so they were published then).
    advanced: bool,
}

/// Revives each held board's room that has not received the events its history gained
/// before the previous probe: live delivery takes milliseconds, so a room still short of
/// them a probe later ([`INTERVAL`]) lost its subscription without any push saying so.
/// `heads` becomes this probe's, for `projects` only.
async fn revive_stalled_rooms(
    broker: &Arc<Broker>,
    heads: &mut HashMap<String, Head>,
    projects: &[String],
) {
    let reads: Vec<(String, i64, i64)> = futures_util::stream::iter(projects.to_vec())
        .map(|project| {
            let broker = Arc::clone(broker);
            async move {
                let cursor = broker.room_cursor(&project)?;
                match broker.history_head(&project).await {
                    Ok(seq) => Some((project, cursor, seq?)),
                    Err(error) => {
                        tracing::debug!(project.id = %project, %error, "reading the board's history head failed");
                        None
                    }
                }
            }
        })
        .buffer_unordered(HEAD_READS_IN_FLIGHT)
        .filter_map(std::future::ready)
        .collect()
        .await;
    let mut now = HashMap::with_capacity(reads.len());
    for (project, cursor, seq) in reads {
        let before = heads.get(&project).copied();
        if stalled(before, cursor) {
            broker.revive_room(project.as_str().into());
        }
        now.insert(project, next_head(before, seq));
    }
    *heads = now;
}

/// Whether a room at `cursor` is short of events its history gained before the previous
/// probe (`before`). A room that joined behind an idle history (its sockets replayed it)
/// is not stalled: nothing was published that it should have received live.
fn stalled(before: Option<Head>, cursor: i64) -> bool {
    before.is_some_and(|head| head.advanced && cursor < head.seq)
}

/// This probe's head of a history at `seq`, given the previous probe's.
fn next_head(before: Option<Head>, seq: i64) -> Head {
    Head {
        seq,
        advanced: before.is_some_and(|head| seq > head.seq),
    }
}

/// How many of `projects` each shard holds (a board lives in the slot of its id).
fn boards_per_shard(shards: &[Shard], projects: &[String]) -> Vec<usize> {
    let mut counts = vec![0; shards.len()];
    for project in projects {
        let slot = kanban_redis::slot(project);
        if let Some(index) = shards.iter().position(|s| s.holds(slot)) {
            counts[index] += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_are_counted_on_the_shard_that_owns_their_slot() {
        let shards = vec![
            Shard {
                primary: "a:1".into(),
                slots: vec![(0, 8191)],
            },
            Shard {
                primary: "b:2".into(),
                slots: vec![(8192, 16383)],
            },
        ];
        // slot("foo") = 12182, slot("bar") = 5061 (CLUSTER KEYSLOT).
        let projects = vec!["foo".to_owned(), "bar".to_owned(), "foo".to_owned()];
        assert_eq!(boards_per_shard(&shards, &projects), vec![1, 2]);
        assert_eq!(boards_per_shard(&[], &projects), Vec::<usize>::new());
    }

    #[test]
    fn a_room_is_stalled_only_when_it_misses_events_published_a_probe_ago() {
        // First sight of a board: nothing to compare with.
        let first = next_head(None, 500);
        assert!(!stalled(None, 0));
        assert!(!first.advanced);
        // A room that joined behind an idle history (cursor 0, head 500) is not stalled.
        assert!(!stalled(Some(first), 0));
        let idle = next_head(Some(first), 500);
        assert!(!idle.advanced);
        assert!(!stalled(Some(idle), 0));
        // Events were published: the room must have them by the next probe.
        let busy = next_head(Some(idle), 540);
        assert!(busy.advanced);
        assert!(!stalled(Some(busy), 540), "caught up");
        assert!(!stalled(Some(busy), 560), "ahead of the probe");
        assert!(
            stalled(Some(busy), 539),
            "short of an event published a probe ago"
        );
        assert!(stalled(Some(busy), 500));
    }

    #[test]
    fn a_board_whose_slot_changed_primary_is_reported_once() {
        let shard = |primary: &str| Shard {
            primary: primary.into(),
            slots: vec![(0, 16383)],
        };
        let mut owners = HashMap::new();
        let boards = || vec!["foo".to_owned(), "bar".to_owned()];
        assert!(
            moved_boards(&mut owners, &[shard("a:1")], &boards()).is_empty(),
            "first seen"
        );
        assert!(moved_boards(&mut owners, &[shard("a:1")], &boards()).is_empty());
        let mut moved = moved_boards(&mut owners, &[shard("b:2")], &boards());
        moved.sort();
        assert_eq!(moved, vec!["bar", "foo"]);
        assert!(moved_boards(&mut owners, &[shard("b:2")], &boards()).is_empty());
        // A board no longer held is forgotten; one in no served slot is skipped.
        assert!(moved_boards(&mut owners, &[], &["foo".to_owned()]).is_empty());
        assert!(owners.is_empty());
    }
}
