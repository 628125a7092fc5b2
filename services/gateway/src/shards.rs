//! The Redis Cluster's shards as this gateway sees them, as metrics: every [`INTERVAL`],
//! the slot map, a PING to each shard's primary, and how many of this gateway's boards
//! each shard holds. Nothing runs on a single Redis server.
//!
//! It is also a safety net for the subscriptions: a board whose slot is served by another
//! primary than at the previous probe (a failover, a migration) is subscribed again and
//! its room caught up, whether or not the push that normally triggers that (a
//! disconnection, a `sunsubscribe`) reached the broker.

use crate::broker::Broker;
use crate::metrics::GatewayMetrics;
use kanban_redis::{Connection, Shard};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the shards are probed.
pub const INTERVAL: Duration = Duration::from_secs(5);

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
        for project in moved_boards(&mut owners, &shards, projects) {
            tracing::info!(project.id = %project, "the board's slot is served by another primary; subscribing again");
            broker.resubscribe_board(project.into());
        }
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
    projects: Vec<String>,
) -> Vec<String> {
    let mut now = HashMap::with_capacity(projects.len());
    let mut moved = Vec::new();
    for project in projects {
        let slot = kanban_redis::slot(&project);
        let Some(shard) = shards.iter().find(|s| s.holds(slot)) else {
            continue;
        };
        if owners
            .get(&project)
            .is_some_and(|before| *before != shard.primary)
        {
            moved.push(project.clone());
        }
        now.insert(project, shard.primary.clone());
    }
    *owners = now;
    moved
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
    fn a_board_whose_slot_changed_primary_is_reported_once() {
        let shard = |primary: &str| Shard {
            primary: primary.into(),
            slots: vec![(0, 16383)],
        };
        let mut owners = HashMap::new();
        let boards = || vec!["foo".to_owned(), "bar".to_owned()];
        assert!(
            moved_boards(&mut owners, &[shard("a:1")], boards()).is_empty(),
            "first seen"
        );
        assert!(moved_boards(&mut owners, &[shard("a:1")], boards()).is_empty());
        let mut moved = moved_boards(&mut owners, &[shard("b:2")], boards());
        moved.sort();
        assert_eq!(moved, vec!["bar", "foo"]);
        assert!(moved_boards(&mut owners, &[shard("b:2")], boards()).is_empty());
        // A board no longer held is forgotten; one in no served slot is skipped.
        assert!(moved_boards(&mut owners, &[], vec!["foo".to_owned()]).is_empty());
        assert!(owners.is_empty());
    }
}
