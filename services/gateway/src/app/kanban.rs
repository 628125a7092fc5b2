//! The Kanban board protocol on a socket: authentication at CONNECT, `project:join` with
//! resume by seq, `project:leave`, ticket commands forwarded to the API, and delivery of
//! room events in seq order with gap filling.
//!
//! Each joined room has a cursor: the last seq this socket was sent. An event at or below
//! it is a duplicate and dropped; one right after it is sent; one further ahead means
//! events were missed (e.g. during a Redis reconnect) and they are fetched from the
//! history stream, or, when history no longer has them, the client is told to resync.

use crate::api_client::ApiClient;
use crate::history;
use crate::hub::{Member, RoomEvent};
use crate::protocol::socketio::{self, arg};
use crate::session::{AppState, Cause, Refusal, Session};
use kanban_protocol::events::names;
use kanban_protocol::rest::{
    CreateTicketBody, DeleteTicketQuery, MoveTicketBody, UpdateTicketBody,
};
use kanban_protocol::socket::{
    CreateTicketCommand, DeleteTicketCommand, ErrorAck, Hint, HintCommand, JoinAck, JoinArg,
    LeaveArg, MoveAck, MoveTicketCommand, OkAck, ProjectRemoved, RemovalReason, Resync,
    ResyncReason, TicketAck, UpdateTicketCommand,
};
use kanban_protocol::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The socket's user and its rooms.
#[derive(Debug, Default)]
pub struct KanbanState {
    user: Option<User>,
    /// project id → last seq sent on this socket.
    cursors: HashMap<Arc<str>, i64>,
    /// When this socket last sent a hint (ms since the epoch).
    last_hint_ms: i64,
    /// Rooms whose history ended, at the join, before the seq the API called latest:
    /// project id → that seq. Checked at the session's `relay_lag_check`.
    awaiting: HashMap<Arc<str>, i64>,
}

/// A hint expires this long after it was sent unless repeated.
const HINT_TTL_MS: i64 = 5_000;
/// At most one hint per socket per this many ms.
const HINT_MIN_GAP_MS: i64 = 200;

#[derive(Debug, Clone)]
struct User {
    id: String,
    /// Display name for presence (the token's `name`, else the id).
    name: String,
    /// `None` for anonymous sockets (development only).
    token: Option<String>,
}

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

/// When a token with this `exp` stops being accepted: as seconds since the epoch, and as
/// the moment on the monotonic clock the session ends.
fn expiry(exp: u64, leeway: u64) -> (u64, tokio::time::Instant) {
    let at = exp.saturating_add(leeway);
    let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let left = (at.saturating_mul(1000)).saturating_sub(now);
    (
        at,
        tokio::time::Instant::now() + std::time::Duration::from_millis(left),
    )
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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Session {
    fn kanban(&mut self) -> Option<&mut KanbanState> {
        match &mut self.app {
            AppState::Kanban(state) => Some(state),
            AppState::Echo(_) => None,
        }
    }

    pub(crate) async fn kanban_connect(
        &mut self,
        nsp: &str,
        auth: Option<Value>,
    ) -> Result<(), Refusal> {
        if nsp != "/" {
            return Err(Refusal {
                message: "Invalid namespace".into(),
                data: None,
            });
        }
        let refuse = |message: &str| Refusal {
            message: "Not authorized".into(),
            data: Some(arg(&ErrorBody::new(ErrorCode::Unauthorized, message).error)),
        };
        let token = auth
            .as_ref()
            .and_then(|a| a.get("token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        let user = match (token, &self.ctx.verifier) {
            (Some(token), Some(verifier)) => match verifier.verify(token) {
                Ok(claims) => {
                    self.token_expiry = Some(expiry(claims.exp, verifier.leeway_seconds()));
                    User {
                        name: claims.name.clone().unwrap_or_else(|| claims.sub.clone()),
                        id: claims.sub,
                        token: Some(token.to_owned()),
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "socket token refused");
                    return Err(refuse("invalid or expired token"));
                }
            },
            _ if self.ctx.settings.gateway.allow_anonymous => {
                let id = format!("anonymous-{}", self.sid);
                User {
                    name: id.clone(),
                    id,
                    token: None,
                }
            }
            _ => return Err(refuse("auth.token is required")),
        };
        if let Some(state) = self.kanban() {
            state.user = Some(user);
        }
        Ok(())
    }

    pub(crate) async fn kanban_event(
        &mut self,
        nsp: &str,
        name: String,
        args: Vec<Value>,
        ack: Option<u64>,
    ) -> Result<(), Cause> {
        match name.as_str() {
            names::PROJECT_JOIN => self.join(nsp, &args, ack).await,
            names::PROJECT_LEAVE => self.leave(nsp, &args, ack).await,
            names::TICKET_MOVE
            | names::TICKET_CREATE
            | names::TICKET_UPDATE
            | names::TICKET_DELETE => self.command(nsp, &name, args, ack).await,
            names::TICKET_HINT => self.hint(nsp, &args, ack).await,
            _ => {
                self.refuse_event(
                    nsp,
                    ack,
                    ErrorCode::Validation,
                    &format!("unknown event '{name}'"),
                )
                .await
            }
        }
    }

    async fn join(&mut self, nsp: &str, args: &[Value], ack: Option<u64>) -> Result<(), Cause> {
        let request = match parse_join(args) {
            Ok(request) => request,
            Err(message) => {
                self.ctx.metrics.joins_refused_total.inc();
                return self
                    .refuse_event(nsp, ack, ErrorCode::Validation, message)
                    .await;
            }
        };
        let (user, room_count, already) = match self.kanban() {
            Some(state) => (
                state.user.clone(),
                state.cursors.len(),
                state.cursors.contains_key(request.project.as_str()),
            ),
            None => return Ok(()),
        };
        let Some(user) = user else { return Ok(()) };
        if !already && room_count >= self.ctx.settings.limits.max_rooms_per_socket {
            self.ctx.metrics.joins_refused_total.inc();
            let message = format!(
                "a socket may be in at most {} rooms",
                self.ctx.settings.limits.max_rooms_per_socket
            );
            return self
                .refuse_event(nsp, ack, ErrorCode::Validation, &message)
                .await;
        }
        // Authorise before joining: only members see a board's events.
        let latest = match &user.token {
            Some(token) => match self.ctx.api.access(token, &request.project).await {
                Ok(access) => Some(access.seq),
                Err(body) => {
                    self.ctx.metrics.joins_refused_total.inc();
                    return self
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
            id: self.id,
            tx: self.tx.clone(),
            signals: Arc::clone(&self.signals),
        };
        let known = latest.unwrap_or(0);
        self.ctx.hub.join(&project, member, known);
        if let Some(broker) = &self.ctx.broker {
            if let Err(error) = broker.sync(&project).await {
                tracing::warn!(project.id = %project, %error, "subscribing to the project channel failed");
            }
        }
        // From here on every event of the board reaches this session's queue.
        let live_from = Instant::now();
        let start = request.since.or(latest).unwrap_or(0);
        let previous = self.kanban().and_then(|s| s.cursors.get(&project).copied());
        let start = previous.map_or(start, |p| p.max(start));
        if !already {
            if let Some(presence) = &self.ctx.presence {
                presence.add(&project, &user.id, &user.name);
            }
        }
        if let Some(state) = self.kanban() {
            state.cursors.insert(Arc::clone(&project), start);
        }
        self.catch_up(&project, start, latest, live_from, request.since.is_some())
            .await?;
        self.ctx.metrics.joins_total.inc();
        tracing::debug!(user.id = %user.id, project.id = %project, "socket joined a board");
        let seq = self
            .kanban()
            .and_then(|s| s.cursors.get(&project).copied())
            .unwrap_or(start);
        if let Some(id) = ack {
            let count = match &self.ctx.presence {
                Some(presence) => presence.users(&project).len(),
                None => self.ctx.hub.local_count(&project),
            };
            self.send_packet(socketio::encode_ack(
                nsp,
                id,
                &[arg(&JoinAck::new(seq, count))],
            ))
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
        project: &Arc<str>,
        start: i64,
        latest: Option<i64>,
        live_from: Instant,
        resuming: bool,
    ) -> Result<(), Cause> {
        if self.ctx.broker.is_none() {
            return Ok(());
        }
        let end = self
            .replay(project, None, latest, live_from, resuming)
            .await?;
        match (end, latest) {
            (Replayed::Complete, _) => return Ok(()),
            // History ends before the API's latest seq: the relay has not published the
            // newest commits yet (it lags under load), or history lost them. The socket
            // is subscribed, so the former arrive live; the session looks again a moment
            // later and only then sends the client to a snapshot.
            (Replayed::Short, Some(latest)) => {
                if let Some(state) = self.kanban() {
                    state.awaiting.insert(Arc::clone(project), latest);
                }
                let at = tokio::time::Instant::now() + RELAY_LAG;
                self.relay_lag_check = Some(self.relay_lag_check.map_or(at, |t| t.min(at)));
                return Ok(());
            }
            _ => {}
        }
        let cursor = self.cursor(project).unwrap_or(start);
        let resume_at = latest.map_or(cursor, |latest| latest.max(cursor));
        self.resync(project, ResyncReason::HistoryUnavailable, resume_at)
            .await
    }

    fn cursor(&mut self, project: &str) -> Option<i64> {
        self.kanban()
            .and_then(|state| state.cursors.get(project).copied())
    }

    /// Delivers the board's events after the socket's cursor from history, up to `to`
    /// (or the newest), page by page, each write waiting for the socket, so a long replay
    /// never piles up in a queue. Says whether history held every event from the cursor
    /// on, up to `needed` when that is known.
    async fn replay(
        &mut self,
        project: &Arc<str>,
        to: Option<i64>,
        needed: Option<i64>,
        live_from: Instant,
        count: bool,
    ) -> Result<Replayed, Cause> {
        let Some(broker) = self.ctx.broker.clone() else {
            return Ok(Replayed::Unreadable);
        };
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
            for event in events.iter() {
                if event.seq < next || to.is_some_and(|to| event.seq > to) {
                    continue;
                }
                if event.seq != next {
                    return Ok(Replayed::Hole);
                }
                if count {
                    self.ctx.metrics.replayed_events_total.inc();
                }
                self.deliver(event.clone()).await?;
                next += 1;
                if self.cursor(project).is_none() {
                    return Ok(Replayed::Complete);
                }
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

    async fn resync(
        &mut self,
        project: &Arc<str>,
        reason: ResyncReason,
        resume_at: i64,
    ) -> Result<(), Cause> {
        self.ctx.metrics.resyncs_total.inc();
        if let Some(state) = self.kanban() {
            if let Some(cursor) = state.cursors.get_mut(project) {
                *cursor = (*cursor).max(resume_at);
            }
        }
        let payload = Resync {
            project_id: project.to_string(),
            reason,
            seq: resume_at,
        };
        self.send_packet(socketio::encode_event(
            "/",
            names::PROJECT_RESYNC,
            &[arg(&payload)],
            None,
        ))
        .await
    }

    /// Writes one room event and advances the room's cursor.
    async fn deliver(&mut self, event: RoomEvent) -> Result<(), Cause> {
        let Some(state) = self.kanban() else {
            return Ok(());
        };
        let Some(cursor) = state.cursors.get_mut(&event.project) else {
            return Ok(());
        };
        if event.seq <= *cursor {
            return Ok(());
        }
        *cursor = event.seq;
        let revoked = match (&event.revokes, &state.user) {
            (Some(revocation), Some(user)) => revocation.applies_to(&user.id),
            _ => None,
        };
        let latency = (chrono::Utc::now().timestamp_micros() - event.ts_us).max(0) as f64 / 1e6;
        self.send_raw(event.frame).await?;
        self.ctx.metrics.deliveries_total.inc();
        self.ctx.metrics.delivery_latency_seconds.observe(latency);
        self.ctx
            .metrics
            .fanout_latency_seconds
            .observe(event.received.elapsed().as_secs_f64());
        if let Some(reason) = revoked {
            self.revoke(&event.project, reason, event.seq).await?;
        }
        Ok(())
    }

    /// Takes the socket out of a room it may no longer see, right after the event that
    /// says so (the last one it gets from the board), and tells the client why. Later
    /// events of the board, already queued or not, find no cursor and are dropped.
    async fn revoke(
        &mut self,
        project: &Arc<str>,
        reason: RemovalReason,
        seq: i64,
    ) -> Result<(), Cause> {
        self.leave_room(project).await;
        self.ctx.metrics.revocations_total.inc();
        tracing::debug!(project.id = %project, ?reason, "socket removed from a board");
        let payload = ProjectRemoved {
            project_id: project.to_string(),
            reason,
            seq,
        };
        self.send_packet(socketio::encode_event(
            "/",
            names::PROJECT_REMOVED,
            &[arg(&payload)],
            None,
        ))
        .await
    }

    /// The relay-lag check: a room whose cursor has not reached the seq the API called
    /// latest at the join is filled from history now, or the client is told to resync.
    pub(crate) async fn kanban_relay_lag_check(&mut self) -> Result<(), Cause> {
        self.relay_lag_check = None;
        let awaiting = match self.kanban() {
            Some(state) => std::mem::take(&mut state.awaiting),
            None => return Ok(()),
        };
        for (project, latest) in awaiting {
            let Some(cursor) = self.cursor(&project) else {
                continue;
            };
            if cursor >= latest {
                continue;
            }
            let filled = self
                .replay(&project, Some(latest), Some(latest), Instant::now(), true)
                .await?;
            if filled != Replayed::Complete {
                self.resync(&project, ResyncReason::HistoryUnavailable, latest)
                    .await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn kanban_room_event(&mut self, event: RoomEvent) -> Result<(), Cause> {
        let Some(last) = self
            .kanban()
            .and_then(|s| s.cursors.get(&event.project).copied())
        else {
            return Ok(());
        };
        if event.seq <= last {
            return Ok(());
        }
        if event.seq > last + 1 {
            let project = Arc::clone(&event.project);
            let to = event.seq - 1;
            // Everything before `event` was published before the gateway received it.
            let filled = self
                .replay(&project, Some(to), Some(to), event.received, true)
                .await?;
            if filled != Replayed::Complete {
                self.resync(&project, ResyncReason::Gap, to).await?
            }
        }
        self.deliver(event).await
    }

    /// An ephemeral "who is dragging / editing which ticket" hint: relayed to the board's
    /// sockets on every replica through Redis pub/sub, never stored, rate-limited per
    /// socket, and expiring on its own (`expiresAt`) unless the client repeats it.
    async fn hint(&mut self, nsp: &str, args: &[Value], ack: Option<u64>) -> Result<(), Cause> {
        let parsed = args
            .first()
            .and_then(|a| HintCommand::deserialize(a).ok())
            .filter(|h| uuid::Uuid::parse_str(&h.ticket_id).is_ok());
        let Some(HintCommand {
            project_id: project,
            ticket_id: ticket,
            action,
        }) = parsed
        else {
            let message = "ticket:hint takes {projectId, ticketId, action: dragging|editing|idle}";
            return self
                .refuse_event(nsp, ack, ErrorCode::Validation, message)
                .await;
        };
        let Some(state) = self.kanban() else {
            return Ok(());
        };
        if !state.cursors.contains_key(project.as_str()) {
            return self
                .refuse_event(nsp, ack, ErrorCode::Forbidden, "join the board first")
                .await;
        }
        let now = now_ms();
        if now - state.last_hint_ms < HINT_MIN_GAP_MS {
            self.ctx.metrics.rate_limited_total.inc();
            return self
                .refuse_event(
                    nsp,
                    ack,
                    ErrorCode::RateLimited,
                    "hints are limited to 5 per second",
                )
                .await;
        }
        state.last_hint_ms = now;
        let Some(user) = state.user.clone() else {
            return Ok(());
        };
        let hint = Hint {
            project_id: project,
            ticket_id: ticket,
            action,
            user_id: user.id,
            name: user.name,
            expires_at: now + HINT_TTL_MS,
        };
        if let Some(broker) = self.ctx.broker.clone() {
            if let Err(error) = broker.publish_hint(&hint).await {
                tracing::debug!(%error, "publishing a hint failed");
                return self
                    .refuse_event(nsp, ack, ErrorCode::Unavailable, "hints are unavailable")
                    .await;
            }
        }
        match ack {
            Some(id) => {
                self.send_packet(socketio::encode_ack(nsp, id, &[arg(&OkAck::OK)]))
                    .await
            }
            None => Ok(()),
        }
    }

    async fn leave(&mut self, nsp: &str, args: &[Value], ack: Option<u64>) -> Result<(), Cause> {
        let Some(project) = project_arg(args) else {
            return self
                .refuse_event(
                    nsp,
                    ack,
                    ErrorCode::Validation,
                    "project:leave takes a project id",
                )
                .await;
        };
        self.leave_room(&project).await;
        if let Some(id) = ack {
            self.send_packet(socketio::encode_ack(nsp, id, &[arg(&OkAck::OK)]))
                .await?;
        }
        Ok(())
    }

    async fn leave_room(&mut self, project: &str) {
        let was_in = self
            .kanban()
            .is_some_and(|s| s.cursors.remove(project).is_some());
        if !was_in {
            return;
        }
        let user = self
            .kanban()
            .and_then(|s| s.user.as_ref().map(|u| u.id.clone()));
        if let (Some(presence), Some(user)) = (&self.ctx.presence, user) {
            presence.remove(project, &user);
        }
        self.ctx.hub.leave(project, self.id);
        if let Some(broker) = &self.ctx.broker {
            if let Err(error) = broker.sync(project).await {
                tracing::warn!(project.id = %project, %error, "unsubscribing failed");
            }
        }
    }

    pub(crate) async fn kanban_disconnect(&mut self, _nsp: &str) {
        let rooms: Vec<Arc<str>> = self
            .kanban()
            .map(|s| s.cursors.keys().cloned().collect())
            .unwrap_or_default();
        for project in rooms {
            self.leave_room(&project).await;
        }
    }

    /// Forwards a ticket command to the API with the socket user's token, in a task of its
    /// own, and acks the API's answer. Nothing is relayed to other sockets: they learn of
    /// the change from the event the API commits.
    async fn command(
        &mut self,
        nsp: &str,
        name: &str,
        args: Vec<Value>,
        ack: Option<u64>,
    ) -> Result<(), Cause> {
        let token = self
            .kanban()
            .and_then(|s| s.user.as_ref())
            .and_then(|u| u.token.clone());
        let Some(token) = token else {
            return self
                .refuse_event(
                    nsp,
                    ack,
                    ErrorCode::Unauthorized,
                    "commands need a signed-in socket",
                )
                .await;
        };
        let command = match parse_command(name, args.into_iter().next()) {
            Ok(command) => command,
            Err(message) => {
                return self
                    .refuse_event(nsp, ack, ErrorCode::Validation, &message)
                    .await
            }
        };
        self.ctx.metrics.commands_total.inc();
        let api = self.ctx.api.clone();
        let tx = self.tx.clone();
        let nsp = nsp.to_owned();
        // A command starts its trace here: the API's request joins it via `traceparent`.
        let span = tracing::info_span!(
            parent: None,
            "gateway.command",
            otel.name = %format_args!("command {name}"),
            otel.kind = "server",
            command = name,
            mutation.id = %command.mutation_id,
        );
        tokio::spawn(async move {
            let result = command.forward(&api, &token).instrument(span).await;
            let packet = match (result, ack) {
                (Ok(value), Some(id)) => socketio::encode_ack(&nsp, id, &[value]),
                (Err(body), Some(id)) => {
                    socketio::encode_ack(&nsp, id, &[arg(&ErrorAck::new(body.error))])
                }
                (Ok(_), None) => return,
                (Err(body), None) => {
                    socketio::encode_event(&nsp, names::ERROR, &[arg(&body.error)], None)
                }
            };
            let _ = tx.send(crate::session::ToSession::Packet(packet)).await;
        });
        Ok(())
    }
}

/// A ticket command, checked and turned into the API call it stands for.
#[derive(Debug)]
struct Command {
    call: Call,
    /// Sent as the `Idempotency-Key`: the client's `mutationId`, or a fresh one.
    mutation_id: String,
}

#[derive(Debug, PartialEq)]
enum Call {
    Create {
        project: String,
        body: CreateTicketBody,
    },
    Update {
        ticket: String,
        body: UpdateTicketBody,
    },
    Move {
        ticket: String,
        body: MoveTicketBody,
    },
    Delete {
        ticket: String,
        query: DeleteTicketQuery,
    },
}

impl Command {
    /// Calls the API and returns the ack's argument.
    async fn forward(self, api: &ApiClient, token: &str) -> Result<Value, ErrorBody> {
        let id = self.mutation_id.as_str();
        Ok(match self.call {
            Call::Create { project, body } => arg(&TicketAck::new(
                api.create_ticket(token, &project, &body, id).await?,
            )),
            Call::Update { ticket, body } => arg(&TicketAck::new(
                api.update_ticket(token, &ticket, &body, id).await?,
            )),
            Call::Move { ticket, body } => arg(&MoveAck::new(
                api.move_ticket(token, &ticket, &body, id).await?,
            )),
            Call::Delete { ticket, query } => {
                api.delete_ticket(token, &ticket, &query, id).await?;
                arg(&OkAck::OK)
            }
        })
    }
}

/// A ticket or project id that is safe to put into an API path.
fn uuid_field(id: String, field: &str) -> Result<String, String> {
    match uuid::Uuid::parse_str(&id) {
        Ok(_) => Ok(id),
        Err(_) => Err(format!("{field} must be a ticket or project UUID")),
    }
}

/// The command's payload in its protocol type; `usage` prefixes the parser's complaint.
fn payload<T: DeserializeOwned>(payload: Value, usage: &str) -> Result<T, String> {
    serde_json::from_value(payload).map_err(|e| format!("{usage}: {e}"))
}

/// The client's `mutationId` when valid, else a fresh one.
fn mutation_id(id: Option<String>) -> Result<String, String> {
    match id {
        None => Ok(uuid::Uuid::new_v4().to_string()),
        Some(id)
            if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(id)
        }
        Some(_) => Err("mutationId must be 1 to 128 visible ASCII characters".into()),
    }
}

/// Maps a command's payload (the original plan's shapes, [`kanban_protocol::socket`]) to
/// the API request it stands for ([`kanban_protocol::rest`]). Unknown fields are dropped.
fn parse_command(name: &str, raw: Option<Value>) -> Result<Command, String> {
    let Some(raw @ Value::Object(_)) = raw else {
        return Err(format!("{name} takes an object"));
    };
    let (call, mutation) = match name {
        names::TICKET_MOVE => {
            let command: MoveTicketCommand = payload(
                raw,
                "ticket:move takes {ticketId, toStatus, position?, beforeId?, afterId?, expectedVersion?}",
            )?;
            let call = Call::Move {
                body: command.body(),
                ticket: uuid_field(command.ticket_id, "ticketId")?,
            };
            (call, command.mutation_id)
        }
        names::TICKET_CREATE => {
            let command: CreateTicketCommand =
                payload(raw, "ticket:create takes {projectId, ticket: {title, ...}}")?;
            let call = Call::Create {
                project: uuid_field(command.project_id, "projectId")?,
                body: command.ticket.into(),
            };
            (call, command.mutation_id)
        }
        names::TICKET_UPDATE => {
            let command: UpdateTicketCommand = payload(
                raw,
                "ticket:update takes {ticket: {id, ...fields}, expectedVersion?}",
            )?;
            let call = Call::Update {
                body: command.body(),
                ticket: uuid_field(command.ticket.id, "id")?,
            };
            (call, command.mutation_id)
        }
        names::TICKET_DELETE => {
            let command: DeleteTicketCommand =
                payload(raw, "ticket:delete takes {ticketId, expectedVersion?}")?;
            let call = Call::Delete {
                ticket: uuid_field(command.ticket_id, "ticketId")?,
                query: DeleteTicketQuery {
                    expected_version: command.expected_version,
                },
            };
            (call, command.mutation_id)
        }
        other => return Err(format!("unknown command '{other}'")),
    };
    Ok(Command {
        call,
        mutation_id: mutation_id(mutation)?,
    })
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

    #[test]
    fn commands_map_to_api_requests_and_never_put_raw_input_in_paths() {
        let mv = parse_command(
            "ticket:move",
            Some(json!({"ticketId": ID, "toStatus": "TODO", "position": 2, "extra": 1})),
        )
        .unwrap();
        let Call::Move { ticket, body } = mv.call else {
            panic!("{mv:?}")
        };
        assert_eq!(ticket, ID);
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            json!({"toStatus": "TODO", "position": 2})
        );
        assert!(parse_command(
            "ticket:move",
            Some(json!({"ticketId": "../projects", "toStatus": "TODO"}))
        )
        .is_err());
        let del = parse_command(
            "ticket:delete",
            Some(json!({"ticketId": ID, "expectedVersion": 3, "mutationId": "m1"})),
        )
        .unwrap();
        assert_eq!(del.mutation_id, "m1");
        assert_eq!(
            del.call,
            Call::Delete {
                ticket: ID.into(),
                query: DeleteTicketQuery {
                    expected_version: Some(3)
                }
            }
        );
        let create = parse_command(
            "ticket:create",
            Some(json!({"projectId": ID, "ticket": {"title": "t", "id": "ignored"}})),
        )
        .unwrap();
        let Call::Create { project, body } = create.call else {
            panic!("{create:?}")
        };
        assert_eq!(project, ID);
        assert_eq!(serde_json::to_value(body).unwrap(), json!({"title": "t"}));
        let update = parse_command(
            "ticket:update",
            Some(json!({"ticket": {"id": ID, "title": "x", "description": null}, "expectedVersion": 2})),
        )
        .unwrap();
        let Call::Update { ticket, body } = update.call else {
            panic!("{update:?}")
        };
        assert_eq!(ticket, ID);
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            json!({"title": "x", "description": null, "expectedVersion": 2}),
            "null clears the description, absent leaves it"
        );
        assert!(parse_command("ticket:create", Some(json!("nope"))).is_err());
        assert!(parse_command(
            "ticket:move",
            Some(json!({"ticketId": ID, "toStatus": "TODO", "mutationId": ""}))
        )
        .is_err());
    }

    #[test]
    fn command_refusals_name_the_expected_shape_and_the_problem() {
        let message = parse_command("ticket:create", Some(json!({"projectId": ID}))).unwrap_err();
        assert!(
            message.starts_with("ticket:create takes {projectId, ticket"),
            "{message}"
        );
        assert!(message.contains("missing field `ticket`"), "{message}");
        let message = parse_command(
            "ticket:delete",
            Some(json!({"ticketId": ID, "expectedVersion": "3"})),
        )
        .unwrap_err();
        assert!(message.contains("invalid type"), "{message}");
    }

    /// The typed payloads encode to the very bytes the `json!` literals they replaced did.
    #[test]
    fn typed_payloads_encode_as_the_json_literals_did() {
        use kanban_protocol::socket::{PresenceUpdate, PresentUser};
        let same = |typed: Value, literal: Value| {
            assert_eq!(
                socketio::encode_ack("/", 7, &[typed]),
                socketio::encode_ack("/", 7, &[literal])
            );
        };
        same(
            arg(&JoinAck::new(12, 3)),
            json!({ "ok": true, "seq": 12, "userCount": 3 }),
        );
        same(arg(&OkAck::OK), json!({ "ok": true }));
        let error = ErrorBody::new(ErrorCode::Forbidden, "join the board first").error;
        same(
            arg(&ErrorAck::new(error.clone())),
            json!({ "ok": false, "error": error }),
        );
        same(
            arg(&Resync {
                project_id: ID.into(),
                reason: ResyncReason::HistoryUnavailable,
                seq: 4,
            }),
            json!({ "projectId": ID, "reason": "history_unavailable", "seq": 4 }),
        );
        same(
            arg(&Hint {
                project_id: ID.into(),
                ticket_id: ID.into(),
                action: kanban_protocol::socket::HintAction::Editing,
                user_id: "alice".into(),
                name: "Alice".into(),
                expires_at: 99,
            }),
            json!({
                "projectId": ID,
                "ticketId": ID,
                "action": "editing",
                "userId": "alice",
                "name": "Alice",
                "expiresAt": 99,
            }),
        );
        let users = vec![PresentUser {
            id: "alice".into(),
            name: "Alice".into(),
        }];
        same(
            arg(&PresenceUpdate {
                project_id: ID.into(),
                user_count: 1,
                users: users.clone(),
            }),
            json!({ "projectId": ID, "userCount": 1, "users": users }),
        );
        same(
            arg(&ErrorBody::new(ErrorCode::Unauthorized, "auth.token is required").error),
            json!({ "code": ErrorCode::Unauthorized, "message": "auth.token is required" }),
        );
        assert_eq!(
            socketio::encode_ack("/", 7, &[arg(&OkAck::OK)]),
            r#"37[{"ok":true}]"#
        );
    }
}
