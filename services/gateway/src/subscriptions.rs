//! Which Redis channels the subscription connection holds, kept equal to what the hub's
//! rooms need: one lock per project, held across that project's SUBSCRIBE or UNSUBSCRIBE
//! round trip, so a join and a leave of one board never race each other while joins and
//! leaves of different boards go to Redis side by side (a single lock for every board
//! made a join storm over many boards wait for one round trip after another).
//!
//! After Redis lost or dropped subscriptions (a reconnect; on a Redis Cluster, a node that
//! failed over or a slot that moved to another node), [`Subscriptions::restore`]
//! subscribes a board again, under the same lock, if its room still wants it.

use crate::locks;
use futures_util::future::BoxFuture;
use kanban_redis::Connection;
use prometheus::IntCounter;
use redis::RedisResult;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The subscription connection's two commands (a trait, so that a test can hold one
/// project's SUBSCRIBE in flight and watch another's go through).
pub trait Subscriber: Send + Sync + 'static {
    fn subscribe<'a>(&'a self, channels: &'a [String]) -> BoxFuture<'a, RedisResult<()>>;
    fn unsubscribe<'a>(&'a self, channels: &'a [String]) -> BoxFuture<'a, RedisResult<()>>;
}

impl Subscriber for Connection {
    fn subscribe<'a>(&'a self, channels: &'a [String]) -> BoxFuture<'a, RedisResult<()>> {
        let mut conn = self.clone();
        Box::pin(async move { Connection::subscribe(&mut conn, channels).await })
    }

    fn unsubscribe<'a>(&'a self, channels: &'a [String]) -> BoxFuture<'a, RedisResult<()>> {
        let mut conn = self.clone();
        Box::pin(async move { Connection::unsubscribe(&mut conn, channels).await })
    }
}

/// Per project: whether its channels are subscribed, behind that project's own lock.
type Slot = Arc<tokio::sync::Mutex<bool>>;

pub struct Subscriptions {
    conn: Box<dyn Subscriber>,
    projects: Mutex<HashMap<String, Slot>>,
    poisoned: IntCounter,
}

impl Subscriptions {
    pub fn new(conn: impl Subscriber, poisoned: IntCounter) -> Self {
        Subscriptions {
            conn: Box::new(conn),
            projects: Mutex::new(HashMap::new()),
            poisoned,
        }
    }

    fn projects(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        locks::lock(&self.projects, "subscriptions", &self.poisoned)
    }

    /// Makes `project`'s `channels` subscribed exactly when `wanted()` says so, reading
    /// `wanted` under the project's lock (so joins and leaves may race freely).
    pub async fn sync(
        &self,
        project: &str,
        channels: &[String],
        wanted: impl FnOnce() -> bool,
    ) -> RedisResult<()> {
        let slot = Arc::clone(self.projects().entry(project.to_owned()).or_default());
        let result = {
            let mut subscribed = slot.lock().await;
            match (wanted(), *subscribed) {
                (true, false) => {
                    let result = self.conn.subscribe(channels).await;
                    *subscribed = result.is_ok();
                    result
                }
                (false, true) => {
                    *subscribed = false;
                    self.conn.unsubscribe(channels).await
                }
                _ => Ok(()),
            }
        };
        drop(slot);
        self.forget_if_idle(project);
        result
    }

    /// Forgets an unsubscribed project nobody else is syncing.
    fn forget_if_idle(&self, project: &str) {
        let mut projects = self.projects();
        let idle = projects.get(project).is_some_and(|slot| {
            Arc::strong_count(slot) == 1 && slot.try_lock().is_ok_and(|subscribed| !*subscribed)
        });
        if idle {
            projects.remove(project);
        }
    }

    /// After Redis lost or dropped `project`'s subscription: subscribes again if
    /// `wanted()` (read under the project's lock, so a drop that our own unsubscribe
    /// caused finds the board no longer wanted). Subscribing to a channel held already
    /// changes nothing, so it is safe to call whenever in doubt. Returns whether it
    /// subscribed.
    pub async fn restore(
        &self,
        project: &str,
        channels: &[String],
        wanted: impl FnOnce() -> bool,
    ) -> RedisResult<bool> {
        let slot = Arc::clone(self.projects().entry(project.to_owned()).or_default());
        let result = {
            let mut subscribed = slot.lock().await;
            if wanted() {
                let result = self.conn.subscribe(channels).await;
                *subscribed = result.is_ok() || *subscribed;
                result.map(|()| true)
            } else {
                Ok(false)
            }
        };
        drop(slot);
        self.forget_if_idle(project);
        result
    }

    /// The projects whose channels are subscribed (or being subscribed).
    pub fn subscribed_projects(&self) -> Vec<String> {
        self.projects()
            .iter()
            .filter(|(_, slot)| slot.try_lock().map_or(true, |subscribed| *subscribed))
            .map(|(project, _)| project.clone())
            .collect()
    }

    /// Projects whose channels are subscribed.
    pub fn subscribed(&self) -> usize {
        self.projects()
            .values()
            .filter(|slot| slot.try_lock().map_or(true, |subscribed| *subscribed))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::Notify;

    /// A subscriber that holds the SUBSCRIBE of channels starting with `held` until told.
    #[derive(Default)]
    struct Gate {
        held: String,
        started: Notify,
        release: Notify,
        subscribes: AtomicUsize,
        unsubscribes: AtomicUsize,
    }

    impl Subscriber for Arc<Gate> {
        fn subscribe<'a>(&'a self, channels: &'a [String]) -> BoxFuture<'a, RedisResult<()>> {
            Box::pin(async move {
                if channels[0].starts_with(&self.held) {
                    self.started.notify_one();
                    self.release.notified().await;
                }
                self.subscribes.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }

        fn unsubscribe<'a>(&'a self, _channels: &'a [String]) -> BoxFuture<'a, RedisResult<()>> {
            Box::pin(async move {
                self.unsubscribes.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    fn channels(project: &str) -> Vec<String> {
        vec![format!("{project}:events"), format!("{project}:presence")]
    }

    fn counter() -> IntCounter {
        IntCounter::new("poisoned_locks_total", "test").unwrap()
    }

    /// While one board's SUBSCRIBE waits for Redis, another board's join goes through: the
    /// old single lock held across the round trip made it wait (this test hung).
    #[tokio::test]
    async fn a_slow_subscribe_does_not_hold_up_other_boards() {
        let gate = Arc::new(Gate {
            held: "slow".into(),
            ..Gate::default()
        });
        let subs = Arc::new(Subscriptions::new(Arc::clone(&gate), counter()));
        let started = gate.started.notified();
        let slow = tokio::spawn({
            let subs = Arc::clone(&subs);
            async move { subs.sync("slow", &channels("slow"), || true).await }
        });
        started.await;
        let fast = tokio::time::timeout(
            Duration::from_secs(30),
            subs.sync("fast", &channels("fast"), || true),
        )
        .await;
        assert!(
            matches!(fast, Ok(Ok(()))),
            "the other board's subscribe waited for the slow one"
        );
        assert_eq!(gate.subscribes.load(Ordering::SeqCst), 1);
        gate.release.notify_one();
        slow.await.unwrap().unwrap();
        assert_eq!(gate.subscribes.load(Ordering::SeqCst), 2);
        assert_eq!(subs.subscribed(), 2);
    }

    /// Joins and leaves of one board are serialised: each sync acts on what the rooms
    /// want when it runs, so the subscription ends as the last one found.
    #[tokio::test]
    async fn syncs_of_one_board_follow_what_its_room_wants() {
        let gate = Arc::new(Gate {
            held: "none".into(),
            ..Gate::default()
        });
        let subs = Subscriptions::new(Arc::clone(&gate), counter());
        subs.sync("p", &channels("p"), || true).await.unwrap();
        subs.sync("p", &channels("p"), || true).await.unwrap();
        assert_eq!(gate.subscribes.load(Ordering::SeqCst), 1, "subscribed once");
        subs.sync("p", &channels("p"), || false).await.unwrap();
        subs.sync("p", &channels("p"), || false).await.unwrap();
        assert_eq!(
            gate.unsubscribes.load(Ordering::SeqCst),
            1,
            "unsubscribed once"
        );
        assert_eq!(subs.subscribed(), 0);
        assert!(subs.projects().is_empty(), "an idle board is forgotten");
    }

    /// A subscription that Redis lost or dropped is taken again while the room wants
    /// it, and not after this replica let the board go.
    #[tokio::test]
    async fn a_lost_subscription_is_restored_only_while_the_room_wants_it() {
        let gate = Arc::new(Gate {
            held: "none".into(),
            ..Gate::default()
        });
        let subs = Subscriptions::new(Arc::clone(&gate), counter());
        subs.sync("p", &channels("p"), || true).await.unwrap();
        assert!(subs.restore("p", &channels("p"), || true).await.unwrap());
        assert_eq!(gate.subscribes.load(Ordering::SeqCst), 2);
        assert_eq!(subs.subscribed(), 1);
        subs.sync("p", &channels("p"), || false).await.unwrap();
        assert!(!subs.restore("p", &channels("p"), || false).await.unwrap());
        assert!(!subs
            .restore("never", &channels("never"), || false)
            .await
            .unwrap());
        assert_eq!(gate.subscribes.load(Ordering::SeqCst), 2);
        assert!(
            subs.projects().is_empty(),
            "nothing is kept for boards not held"
        );
    }
}
