//! A socket's rooms: `project:join` (authorised by the API, resumed by seq from history),
//! `project:leave`, and delivery of room events in seq order with gap filling.
//!
//! Each joined room has a cursor: the last seq this socket was sent. An event at or below
//! it is a duplicate and dropped; one right after it is sent; one further ahead means
//! events were missed (e.g. during a Redis reconnect) and they are fetched from the
//! history stream, or, when history no longer has them, the client is told to resync.

use super::state::BoardSocket;
use crate::history;
use crate::hub::{Member, RoomEvent};
use crate::protocol::socketio::{arg, encode_ack, encode_event};
use crate::transport::{Cause, Io};
use kanban_protocol::events::names;
use kanban_protocol::socket::{
    JoinAck, JoinArg, LeaveArg, OkAck, ProjectRemoved, RemovalReason, Resync, ResyncReason,
};
use kanban_protocol::ErrorCode;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a `project:join` asks for, checked.
struct Join {
    project: String,
    since: Option<i64>,
}

fn parse_join(args: &[Value]) -> Result<Join, &'static str> {
    const USAGE: &str = "project:join takes a project id or {projectId, sinceSeq}";
    const SINCE: &str = "sinceSeq must be a whole number >= 0";
    let arg = args.first().ok_or(USAGE)?;
    let (project, since) = match JoinArg::deserialize(arg) {
        Ok(join) => join.into_parts(),
        // With a string projectId, only sinceSeq can have been wrong.
        Err(_) if arg.get("projectId").is_some_and(Value::is_string) => return Err(SINCE),
        Err(_) => return Err(USAGE),
    };
    if since.is_some_and(|s| s < 0) {
        return Err(SINCE);
    }
    uuid::Uuid::parse_str(&project).map_err(|_| "projectId must be a UUID")?;
    Ok(Join { project, since })
}

fn project_arg(args: &[Value]) -> Option<String> {
    let id = LeaveArg::deserialize(args.first()?).ok()?.into_project_id();
    uuid::Uuid::parse_str(&id).ok().map(|_| id)
}

/// How a replay from history ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replayed {
    /// Every event the socket needed was in history and is written.
    Complete,
    /// History ends before the seq the socket needs (the relay lags, or history lost it).
    Short,
    /// History no longer holds the next event (trimmed or expired).
    Hole,
    /// History could not be read.
    Unreadable,
}

/// How long after a join whose history ended before the API's latest seq the session
/// looks again (the relay's lag under load is a few hundred ms).
const RELAY_LAG: Duration = Duration::from_secs(2);

impl BoardSocket {
    pub(super) async fn join(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        nsp: &str,
        args: &[Value],
        ack: Option<u64>,
    ) -> Result<(), Cause> {
        let request = match parse_join(args) {
            Ok(request) => request,
            Err(message) => {
                self.board.metrics.joins_refused_total.inc();
                return io
                    .refuse_event(nsp, ack, ErrorCode::Validation, message)
                    .await;
            }
        };
        let room_count = self.cursors.len();
        let already = self.cursors.contains_key(request.project.as_str());
        let Some(user) = self.user.clone() else {
            return Ok(());
        };
        if !already && room_count >= self.board.settings.limits.max_rooms_per_socket {
            self.board.metrics.joins_refused_total.inc();
            let message = format!(
                "a socket may be in at most {} rooms",
                self.board.settings.limits.max_rooms_per_socket
            );
            return io
                .refuse_event(nsp, ack, ErrorCode::Validation, &message)
                .await;
        }
        // Authorise before joining: only members see a board's events.
        let latest = match &user.token {
            Some(token) => match self.board.api.access(token, &request.project).await {
                Ok(access) => Some(access.seq),
                Err(body) => {
                    self.board.metrics.joins_refused_total.inc();
                    return io
                        .refuse_event(nsp, ack, body.error.code, &body.error.message)
                        .await;
                }
            },
            None => None,
        };
        let project: Arc<str> = Arc::from(request.project.as_str());
        // Subscribe before reading history, so every event after what history returns
        // arrives live (queued for this session while the join finishes).
        let member = Member {
            id: io.id(),
            tx: io.sender(),
            signals: Arc::clone(io.signals()),
            lane: Some(Arc::clone(&self.lane)),
        };
        let known = latest.unwrap_or(0);
        self.board.hub.join(&project, member, known);
        if let Err(error) = self.board.broker.sync(&project).await {
            tracing::warn!(project.id = %project, %error, "subscribing to the project channel failed");
        }
        // From here on every event of the board reaches this session's queue.
        let live_from = Instant::now();
        let start = request.since.or(latest).unwrap_or(0);
        let previous = self.cursors.get(&project).copied();
        let start = previous.map_or(start, |p| p.max(start));
        if !already {
            self.board.presence.add(&project, &user.id, &user.name);
        }
        self.cursors.insert(Arc::clone(&project), start);
        self.catch_up(
            io,
            &project,
            start,
            latest,
            live_from,
            request.since.is_some(),
        )
        .await?;
        self.board.metrics.joins_total.inc();
        tracing::debug!(user.id = %user.id, project.id = %project, "socket joined a board");
        let seq = self.cursors.get(&project).copied().unwrap_or(start);
        if let Some(id) = ack {
            let count = self.board.presence.users(&project).len();
            io.send_packet(encode_ack(nsp, id, &[arg(&JoinAck::new(seq, count))]))
                .await?;
        }
        Ok(())
    }

    /// Sends what the socket missed after `start` from the history stream. When history
    /// cannot show everything up to `latest` (trimmed, expired, Redis down; for an
    /// anonymous socket, whose `latest` is unknown, any failed read), tells the client to
    /// resync from a snapshot instead.
    async fn catch_up(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        project: &Arc<str>,
        start: i64,
        latest: Option<i64>,
        live_from: Instant,
        resuming: bool,
    ) -> Result<(), Cause> {
        let end = self
            .replay(io, project, None, latest, live_from, resuming)
            .await?;
        match (end, latest) {
            (Replayed::Complete, _) => return Ok(()),
            // History ends before the API's latest seq: the relay has not published the
            // newest commits yet (it lags under load), or history lost them. The socket
            // is subscribed, so the former arrive live; the session looks again a moment
            // later and only then sends the client to a snapshot.
            (Replayed::Short, Some(latest)) => {
                self.awaiting.insert(Arc::clone(project), latest);
                let at = tokio::time::Instant::now() + RELAY_LAG;
                self.relay_lag_check = Some(self.relay_lag_check.map_or(at, |t| t.min(at)));
                return Ok(());
            }
            _ => {}
        }
        let cursor = self.cursor(project).unwrap_or(start);
        let resume_at = latest.map_or(cursor, |latest| latest.max(cursor));
        self.resync(io, project, ResyncReason::HistoryUnavailable, resume_at)
            .await
    }

    fn cursor(&self, project: &str) -> Option<i64> {
        self.cursors.get(project).copied()
    }

    /// Delivers the board's events after the socket's cursor from history, up to `to`
    /// (or the newest), page by page, each write waiting for the socket, so a long replay
    /// never piles up in a queue. Says whether history held every event from the cursor
    /// on, up to `needed` when that is known.
    async fn replay(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        project: &Arc<str>,
        to: Option<i64>,
        needed: Option<i64>,
        live_from: Instant,
        count: bool,
    ) -> Result<Replayed, Cause> {
        let broker = std::sync::Arc::clone(&self.board.broker);
        loop {
            // Gone when a replayed event took the socket out of the room.
            let Some(cursor) = self.cursor(project) else {
                return Ok(Replayed::Complete);
            };
            if to.is_some_and(|to| cursor >= to) {
                return Ok(Replayed::Complete);
            }
            let page = history::page_of(cursor + 1);
            let events = match broker.history_page(project, page, live_from).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(project.id = %project, %error, "reading history failed");
                    return Ok(if needed.is_some_and(|needed| cursor >= needed) {
                        Replayed::Complete
                    } else {
                        Replayed::Unreadable
                    });
                }
            };
            let mut next = cursor + 1;
            // A page's events leave together, in a few large writes.
            io.cork();
            let ended = self
                .deliver_page(io, project, &events, &mut next, to, count)
                .await;
            io.uncork();
            if let Some(replayed) = ended? {
                return Ok(replayed);
            }
            if next <= history::page_end(page) {
                // The end of history: everything older than `live_from` was in it.
                let reached = next - 1;
                let enough = needed.is_none_or(|needed| reached >= needed)
                    && to.is_none_or(|to| reached >= to);
                return Ok(if enough {
                    Replayed::Complete
                } else {
                    Replayed::Short
                });
            }
        }
    }

    /// Delivers a history page's events from `next` on (up to `to`), advancing `next`;
    /// `Some` when the replay ends here (a hole, or a revocation took the socket out).
    async fn deliver_page(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        project: &Arc<str>,
        events: &[RoomEvent],
        next: &mut i64,
        to: Option<i64>,
        count: bool,
    ) -> Result<Option<Replayed>, Cause> {
        for event in events {
            if event.seq < *next || to.is_some_and(|to| event.seq > to) {
                continue;
            }
            if event.seq != *next {
                return Ok(Some(Replayed::Hole));
            }
            if count {
                self.board.metrics.replayed_events_total.inc();
            }
            self.deliver(io, event.clone()).await?;
            *next += 1;
            if self.cursor(project).is_none() {
                return Ok(Some(Replayed::Complete));
            }
        }
        Ok(None)
    }

    async fn resync(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        project: &Arc<str>,
        reason: ResyncReason,
        resume_at: i64,
    ) -> Result<(), Cause> {
        self.board.metrics.resyncs_total.inc();
        if let Some(cursor) = self.cursors.get_mut(project) {
            *cursor = (*cursor).max(resume_at);
        }
        let payload = Resync {
            project_id: project.to_string(),
            reason,
            seq: resume_at,
        };
        io.send_packet(encode_event(
            "/",
            names::PROJECT_RESYNC,
            &[arg(&payload)],
            None,
        ))
        .await
    }

    /// Writes one room event and advances the room's cursor.
    async fn deliver(&mut self, io: &mut Io<'_, RoomEvent>, event: RoomEvent) -> Result<(), Cause> {
        let Some(cursor) = self.cursors.get_mut(&event.project) else {
            return Ok(());
        };
        if event.seq <= *cursor {
            return Ok(());
        }
        *cursor = event.seq;
        let revoked = match (&event.revokes, &self.user) {
            (Some(revocation), Some(user)) => revocation.applies_to(&user.id),
            _ => None,
        };
        io.send_frame(event.frame.clone()).await?;
        let inside = event.received.elapsed().as_secs_f64();
        let metrics = &self.board.metrics;
        metrics.deliveries_total.inc();
        metrics
            .delivery_latency_seconds
            .observe((event.commit_to_receipt_us as f64 / 1e6 + inside).max(0.0));
        metrics.fanout_latency_seconds.observe(inside);
        if let Some(reason) = revoked {
            Box::pin(self.revoke(io, &event.project, reason, event.seq)).await?;
        }
        Ok(())
    }

    /// Takes the socket out of a room it may no longer see, right after the event that
    /// says so (the last one it gets from the board), and tells the client why. Later
    /// events of the board, already queued or not, find no cursor and are dropped.
    async fn revoke(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        project: &Arc<str>,
        reason: RemovalReason,
        seq: i64,
    ) -> Result<(), Cause> {
        self.leave_room(io, project).await;
        self.board.metrics.revocations_total.inc();
        tracing::debug!(project.id = %project, ?reason, "socket removed from a board");
        let payload = ProjectRemoved {
            project_id: project.to_string(),
            reason,
            seq,
        };
        io.send_packet(encode_event(
            "/",
            names::PROJECT_REMOVED,
            &[arg(&payload)],
            None,
        ))
        .await
    }

    /// The relay-lag check: a room whose cursor has not reached the seq the API called
    /// latest at the join is filled from history now, or the client is told to resync.
    pub(super) async fn check_relay_lag(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
    ) -> Result<(), Cause> {
        self.relay_lag_check = None;
        let awaiting = std::mem::take(&mut self.awaiting);
        for (project, latest) in awaiting {
            let Some(cursor) = self.cursor(&project) else {
                continue;
            };
            if cursor >= latest {
                continue;
            }
            let filled = self
                .replay(
                    io,
                    &project,
                    Some(latest),
                    Some(latest),
                    Instant::now(),
                    true,
                )
                .await?;
            if filled != Replayed::Complete {
                self.resync(io, &project, ResyncReason::HistoryUnavailable, latest)
                    .await?;
            }
        }
        Ok(())
    }

    pub(super) async fn room_event(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        event: RoomEvent,
    ) -> Result<(), Cause> {
        let Some(last) = self.cursor(&event.project) else {
            return Ok(());
        };
        if event.seq <= last {
            return Ok(());
        }
        if event.seq > last + 1 {
            let project = Arc::clone(&event.project);
            let to = event.seq - 1;
            // Everything before `event` was published before the gateway received it.
            // A gap is rare: its replay is boxed, out of the hot path's future.
            let filled =
                Box::pin(self.replay(io, &project, Some(to), Some(to), event.received, true))
                    .await?;
            if filled != Replayed::Complete {
                self.resync(io, &project, ResyncReason::Gap, to).await?
            }
        }
        self.deliver(io, event).await
    }

    pub(super) async fn leave(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        nsp: &str,
        args: &[Value],
        ack: Option<u64>,
    ) -> Result<(), Cause> {
        let Some(project) = project_arg(args) else {
            return io
                .refuse_event(
                    nsp,
                    ack,
                    ErrorCode::Validation,
                    "project:leave takes a project id",
                )
                .await;
        };
        self.leave_room(io, &project).await;
        if let Some(id) = ack {
            io.send_packet(encode_ack(nsp, id, &[arg(&OkAck::OK)]))
                .await?;
        }
        Ok(())
    }

    async fn leave_room(&mut self, io: &mut Io<'_, RoomEvent>, project: &str) {
        if self.cursors.remove(project).is_none() {
            return;
        }
        if let Some(user) = &self.user {
            self.board.presence.remove(project, &user.id);
        }
        self.board.hub.leave(project, io.id());
        if let Err(error) = self.board.broker.sync(project).await {
            tracing::warn!(project.id = %project, %error, "unsubscribing failed");
        }
    }

    pub(super) async fn disconnect(&mut self, io: &mut Io<'_, RoomEvent>) {
        let rooms: Vec<Arc<str>> = self.cursors.keys().cloned().collect();
        for project in rooms {
            self.leave_room(io, &project).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "6f1c2b9e-0d5e-4a57-9a3e-2d6c1f0b7a11";

    #[test]
    fn join_accepts_an_id_or_an_object_with_since_seq() {
        let plain = parse_join(&[json!(ID)]).unwrap();
        assert_eq!((plain.project.as_str(), plain.since), (ID, None));
        let resume = parse_join(&[json!({"projectId": ID, "sinceSeq": 7})]).unwrap();
        assert_eq!(resume.since, Some(7));
        assert!(parse_join(&[json!({"projectId": ID, "sinceSeq": -1})]).is_err());
        assert!(parse_join(&[json!("not-a-uuid")]).is_err());
        assert!(parse_join(&[json!(42)]).is_err());
        assert!(parse_join(&[]).is_err());
    }

    #[test]
    fn join_refusals_say_what_was_wrong() {
        let since = "sinceSeq must be a whole number >= 0";
        for bad in [
            json!({"projectId": ID, "sinceSeq": -1}),
            json!({"projectId": ID, "sinceSeq": "x"}),
        ] {
            assert_eq!(parse_join(&[bad]).err(), Some(since));
        }
        assert_eq!(
            parse_join(&[json!({"sinceSeq": 1})]).err(),
            Some("project:join takes a project id or {projectId, sinceSeq}")
        );
        assert_eq!(
            parse_join(&[json!({"projectId": ID, "sinceSeq": null})])
                .unwrap()
                .since,
            None
        );
    }

    #[test]
    fn leave_accepts_an_id_or_an_object() {
        assert_eq!(project_arg(&[json!(ID)]).as_deref(), Some(ID));
        assert_eq!(
            project_arg(&[json!({"projectId": ID})]).as_deref(),
            Some(ID)
        );
        assert_eq!(project_arg(&[json!("nope")]), None);
        assert_eq!(project_arg(&[json!({"id": ID})]), None);
    }
}
