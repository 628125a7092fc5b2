//! Cluster-wide presence: who is viewing each board, the same on every replica, announced
//! at most once per room per interval, and free of ghosts when a replica dies.
//!
//! Each replica keeps its own local view (users and their socket counts per room) and
//! writes it, when it changed, as one field of the board's presence hash in Redis,
//! `<prefix>:{<project>}:presence`, field = this replica's id. It also keeps a heartbeat key
//! `<prefix>:{<prefix>:replicas}:<id>` alive with a short TTL (every replica's heartbeat is in
//! one slot, so one `MGET` reads them on a Redis Cluster too); on a single server it also
//! keeps the untagged key of earlier versions, `<prefix>:presence:replica:<id>`, and counts
//! a replica alive when either exists, so a rolling upgrade purges nobody. A board's presence is the union
//! of the fields whose replica still has a heartbeat; fields of dead replicas are deleted by
//! whoever notices. A change is signalled on the channel `<prefix>:{<project>}:presence`, and
//! every replica with local members recomputes that board on its next tick and sends its
//! sockets one `room:userJoined` / `room:userLeft` if the result changed. Every room is also
//! recomputed at each heartbeat, so a dead replica's users vanish within the TTL plus one
//! heartbeat. A join storm of N sockets therefore costs each socket at most one presence
//! message per interval, O(N) messages in all, instead of O(N²).

use crate::hub::Hub;
use crate::metrics::GatewayMetrics;
use crate::protocol::socketio;
use bytestring::ByteString;
use kanban_protocol::events::names;
use kanban_protocol::redis_keys;
use kanban_protocol::socket::{PresenceUpdate, PresentUser};
use kanban_redis::Connection;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Default)]
struct LocalRoom {
    /// user id → (display name, local sockets)
    users: BTreeMap<String, (String, usize)>,
    /// Our field in Redis must be rewritten.
    write: bool,
    /// The board's aggregate must be recomputed.
    recompute: bool,
    /// What the local sockets were last told.
    announced: Option<Vec<PresentUser>>,
    /// The latest aggregate (for join acks).
    known: Vec<PresentUser>,
}

pub struct Presence {
    conn: Connection,
    prefix: String,
    replica: String,
    hub: Arc<Hub>,
    metrics: Arc<GatewayMetrics>,
    rooms: Mutex<HashMap<String, LocalRoom>>,
    interval: Duration,
    heartbeat: Duration,
    ttl: Duration,
}

/// At most this many users are listed in an announcement (sorted by id); `userCount` is
/// always the exact number of distinct users.
pub const MAX_LISTED_USERS: usize = 50;

/// What the board application tells presence and asks of it. [`Presence`] is the
/// cluster-wide Redis implementation; unit tests use an in-memory one
/// ([`crate::memory::MemoryPresence`]).
pub trait PresenceTracker: Send + Sync + 'static {
    /// A socket of `user` entered the room.
    fn add(&self, project: &str, user: &str, name: &str);
    /// A socket of `user` left the room.
    fn remove(&self, project: &str, user: &str);
    /// The board's users as last known (for join acks).
    fn users(&self, project: &str) -> Vec<PresentUser>;
}

impl PresenceTracker for Presence {
    fn add(&self, project: &str, user: &str, name: &str) {
        Presence::add(self, project, user, name);
    }

    fn remove(&self, project: &str, user: &str) {
        Presence::remove(self, project, user);
    }

    fn users(&self, project: &str) -> Vec<PresentUser> {
        Presence::users(self, project)
    }
}

impl Presence {
    pub fn new(
        conn: Connection,
        prefix: String,
        hub: Arc<Hub>,
        metrics: Arc<GatewayMetrics>,
        interval: Duration,
        ttl: Duration,
    ) -> Self {
        Presence {
            conn,
            prefix,
            // A fresh id per process: a restarted replica never inherits the fields of its
            // previous life, which expire with the old heartbeat.
            replica: uuid::Uuid::new_v4().simple().to_string(),
            hub,
            metrics,
            rooms: Mutex::new(HashMap::new()),
            interval,
            heartbeat: (ttl / 3).max(Duration::from_millis(100)),
            ttl,
        }
    }

    /// The local rooms, locked ([`crate::locks`]: a poisoned lock is recovered and reported).
    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, LocalRoom>> {
        crate::locks::lock(
            &self.rooms,
            "presence rooms",
            &self.metrics.poisoned_locks_total,
        )
    }

    /// A socket of `user` entered the room.
    pub fn add(&self, project: &str, user: &str, name: &str) {
        let mut rooms = self.rooms();
        let room = rooms.entry(project.to_owned()).or_default();
        let entry = room
            .users
            .entry(user.to_owned())
            .or_insert_with(|| (name.to_owned(), 0));
        entry.1 += 1;
        room.write = true;
        room.recompute = true;
    }

    /// A socket of `user` left the room.
    pub fn remove(&self, project: &str, user: &str) {
        if let Some(room) = self.rooms().get_mut(project) {
            if let Some(entry) = room.users.get_mut(user) {
                entry.1 = entry.1.saturating_sub(1);
                if entry.1 == 0 {
                    room.users.remove(user);
                }
            }
            room.write = true;
            room.recompute = true;
        }
    }

    /// Another replica changed the room.
    pub fn changed_elsewhere(&self, project: &str) {
        if let Some(room) = self.rooms().get_mut(project) {
            room.recompute = true;
        }
    }

    /// The board's users as last computed, including this replica's (for join acks).
    pub fn users(&self, project: &str) -> Vec<PresentUser> {
        let rooms = self.rooms();
        let Some(room) = rooms.get(project) else {
            return Vec::new();
        };
        let mut users: BTreeMap<String, PresentUser> = room
            .known
            .iter()
            .map(|u| (u.id.clone(), u.clone()))
            .collect();
        for (id, (name, _)) in &room.users {
            users.entry(id.clone()).or_insert_with(|| PresentUser {
                id: id.clone(),
                name: name.clone(),
            });
        }
        users.into_values().collect()
    }

    /// Ticks until shutdown: heartbeat, write changed local views, recompute and announce.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut next_heartbeat = Instant::now();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => {
                    self.leave_all().await;
                    return;
                }
            }
            if Instant::now() >= next_heartbeat {
                next_heartbeat = Instant::now() + self.heartbeat;
                if let Err(error) = self.beat().await {
                    tracing::warn!(%error, "presence heartbeat failed");
                }
            }
            if let Err(error) = self.flush().await {
                tracing::warn!(%error, "presence update failed");
            }
        }
    }

    /// A replica's heartbeat keys: the tagged one, and on a single server also the
    /// untagged one of earlier versions (so both see each other during a rolling upgrade).
    fn heartbeat_keys(&self, replica: &str) -> Vec<String> {
        let mut keys = vec![redis_keys::replica_heartbeat(&self.prefix, replica)];
        if self.conn.topology() == kanban_redis::Topology::Single {
            keys.push(redis_keys::untagged_replica_heartbeat(
                &self.prefix,
                replica,
            ));
        }
        keys
    }

    async fn beat(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for key in self.heartbeat_keys(&self.replica) {
            pipe.cmd("SET")
                .arg(key)
                .arg(1)
                .arg("PX")
                .arg(self.ttl.as_millis() as u64)
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await?;
        // Rewrite every local view at each heartbeat, not only on change: that renews the
        // hashes' expiry on boards whose viewers stay put, and restores a view that another
        // replica purged while this one missed a heartbeat.
        {
            for room in self.rooms().values_mut() {
                room.write = true;
                room.recompute = true;
            }
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), redis::RedisError> {
        // Take the work out under the lock; do the I/O without it.
        let work: Vec<(String, Option<String>, bool)> = {
            let mut rooms = self.rooms();
            rooms.retain(|project, room| {
                !room.users.is_empty() || room.write || self.hub.has_room(project)
            });
            rooms
                .iter_mut()
                .filter(|(_, room)| room.write || room.recompute)
                .map(|(project, room)| {
                    let view = room.write.then(|| {
                        let users: Vec<PresentUser> = room
                            .users
                            .iter()
                            .map(|(id, (name, _))| PresentUser {
                                id: id.clone(),
                                name: name.clone(),
                            })
                            .collect();
                        serde_json::to_string(&users).unwrap_or_else(|_| "[]".into())
                    });
                    let recompute = room.recompute;
                    room.write = false;
                    room.recompute = false;
                    (project.clone(), view, recompute)
                })
                .collect()
        };
        let mut conn = self.conn.clone();
        for (project, view, recompute) in work {
            let key = redis_keys::presence(&self.prefix, &project);
            if let Some(view) = view {
                let mut pipe = redis::pipe();
                if view == "[]" {
                    pipe.cmd("HDEL").arg(&key).arg(&self.replica).ignore();
                } else {
                    pipe.cmd("HSET")
                        .arg(&key)
                        .arg(&self.replica)
                        .arg(&view)
                        .ignore();
                    pipe.cmd("PEXPIRE")
                        .arg(&key)
                        .arg(self.ttl.as_millis() as u64 * 100)
                        .ignore();
                }
                pipe.cmd(self.conn.topology().publish_command())
                    .arg(redis_keys::presence(&self.prefix, &project))
                    .arg(&self.replica)
                    .ignore();
                let _: () = pipe.query_async(&mut conn).await?;
            }
            if recompute && self.hub.has_room(&project) {
                let users = self.aggregate(&mut conn, &project).await?;
                self.announce(&project, users);
            }
        }
        Ok(())
    }

    /// The union of the live replicas' views of a board; dead replicas' fields are deleted.
    async fn aggregate(
        &self,
        conn: &mut Connection,
        project: &str,
    ) -> Result<Vec<PresentUser>, redis::RedisError> {
        let key = redis_keys::presence(&self.prefix, project);
        let fields: HashMap<String, String> =
            redis::cmd("HGETALL").arg(&key).query_async(conn).await?;
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let replicas: Vec<&String> = fields.keys().collect();
        let per_replica = self.heartbeat_keys(&self.replica).len();
        let mut alive_cmd = redis::cmd("MGET");
        for replica in &replicas {
            alive_cmd.arg(self.heartbeat_keys(replica));
        }
        let beats: Vec<Option<String>> = alive_cmd.query_async(conn).await?;
        let mut users: BTreeMap<String, PresentUser> = BTreeMap::new();
        let mut dead = Vec::new();
        for (replica, beats) in replicas.iter().zip(beats.chunks(per_replica)) {
            let alive = beats.iter().any(Option::is_some);
            if !alive && **replica != self.replica {
                dead.push((*replica).clone());
                continue;
            }
            if let Ok(list) = serde_json::from_str::<Vec<PresentUser>>(&fields[*replica]) {
                for user in list {
                    users.entry(user.id.clone()).or_insert(user);
                }
            }
        }
        if !dead.is_empty() {
            self.metrics
                .presence_stale_purged_total
                .inc_by(dead.len() as u64);
            let _: i64 = redis::cmd("HDEL")
                .arg(&key)
                .arg(&dead)
                .query_async(conn)
                .await?;
        }
        Ok(users.into_values().collect())
    }

    /// Sends the local sockets of a room one presence event if the users changed.
    fn announce(&self, project: &str, users: Vec<PresentUser>) {
        let event = {
            let mut rooms = self.rooms();
            let Some(room) = rooms.get_mut(project) else {
                return;
            };
            room.known = users.clone();
            if room.announced.as_ref() == Some(&users) {
                self.metrics.presence_coalesced_total.inc();
                return;
            }
            let joined = match &room.announced {
                None => true,
                Some(before) => users.iter().any(|u| !before.contains(u)),
            };
            room.announced = Some(users.clone());
            if joined {
                names::ROOM_USER_JOINED
            } else {
                names::ROOM_USER_LEFT
            }
        };
        // userCount is exact; the list is capped so that a crowded board's announcement
        // stays small (it goes to every socket in the room).
        let user_count = users.len();
        let mut listed = users;
        listed.truncate(MAX_LISTED_USERS);
        let payload = PresenceUpdate {
            project_id: project.to_owned(),
            user_count,
            users: listed,
        };
        let frame = ByteString::from(socketio::event_frame(
            "/",
            event,
            &[socketio::arg(&payload)],
        ));
        let sent = self.hub.send_frame(project, &frame);
        self.metrics.presence_updates_total.inc_by(sent as u64);
    }

    /// On shutdown: remove this replica's views so that the others update at once.
    async fn leave_all(&self) {
        let projects: Vec<String> = self.rooms().keys().cloned().collect();
        let mut conn = self.conn.clone();
        for project in projects {
            let mut pipe = redis::pipe();
            pipe.cmd("HDEL")
                .arg(redis_keys::presence(&self.prefix, &project))
                .arg(&self.replica)
                .ignore();
            pipe.cmd(self.conn.topology().publish_command())
                .arg(redis_keys::presence(&self.prefix, &project))
                .arg(&self.replica)
                .ignore();
            let _: Result<(), _> = pipe.query_async(&mut conn).await;
        }
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(self.heartbeat_keys(&self.replica))
            .query_async(&mut conn)
            .await;
    }
}
