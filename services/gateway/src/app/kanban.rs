//! The Kanban board protocol on a socket: authentication at CONNECT, `project:join` with
//! resume by seq, `project:leave`, ticket commands forwarded to the API, and delivery of
//! room events in seq order with gap filling.
//!
//! Each joined room has a cursor: the last seq this socket was sent. An event at or below
//! it is a duplicate and dropped; one right after it is sent; one further ahead means
//! events were missed (e.g. during a Redis reconnect) and they are fetched from the
//! history stream, or, when history no longer has them, the client is told to resync.

use crate::hub::{Member, RoomEvent};
use crate::protocol::socketio;
use crate::session::{AppState, Cause, Refusal, Session};
use kanban_protocol::events::names;
use kanban_protocol::{ErrorBody, ErrorCode};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The socket's user and its rooms.
#[derive(Debug, Default)]
pub struct KanbanState {
    user: Option<User>,
    /// project id → last seq sent on this socket.
    cursors: HashMap<Arc<str>, i64>,
    /// When this socket last sent a hint (ms since the epoch).
    last_hint_ms: i64,
}

const HINT_ACTIONS: [&str; 3] = ["dragging", "editing", "idle"];
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

/// What a `project:join` asks for.
struct JoinRequest {
    project: String,
    since: Option<i64>,
}

fn parse_join(args: &[Value]) -> Result<JoinRequest, &'static str> {
    const USAGE: &str = "project:join takes a project id or {projectId, sinceSeq}";
    let (project, since) = match args.first() {
        Some(Value::String(id)) => (id.clone(), None),
        Some(Value::Object(map)) => {
            let project = map
                .get("projectId")
                .and_then(Value::as_str)
                .ok_or(USAGE)?
                .to_owned();
            let since = match map.get("sinceSeq") {
                None | Some(Value::Null) => None,
                Some(value) => Some(
                    value
                        .as_i64()
                        .filter(|s| *s >= 0)
                        .ok_or("sinceSeq must be a whole number >= 0")?,
                ),
            };
            (project, since)
        }
        _ => return Err(USAGE),
    };
    uuid::Uuid::parse_str(&project).map_err(|_| "projectId must be a UUID")?;
    Ok(JoinRequest { project, since })
}

fn project_arg(args: &[Value]) -> Option<String> {
    let id = match args.first() {
        Some(Value::String(id)) => id.clone(),
        Some(Value::Object(map)) => map.get("projectId")?.as_str()?.to_owned(),
        _ => return None,
    };
    uuid::Uuid::parse_str(&id).ok().map(|_| id)
}

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
            data: Some(json!({ "code": ErrorCode::Unauthorized, "message": message })),
        };
        let token = auth
            .as_ref()
            .and_then(|a| a.get("token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        let user = match (token, &self.ctx.verifier) {
            (Some(token), Some(verifier)) => match verifier.verify(token) {
                Ok(claims) => User {
                    name: claims.name.clone().unwrap_or_else(|| claims.sub.clone()),
                    id: claims.sub,
                    token: Some(token.to_owned()),
                },
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
            "project:join" => self.join(nsp, &args, ack).await,
            "project:leave" => self.leave(nsp, &args, ack).await,
            "ticket:move" | "ticket:create" | "ticket:update" | "ticket:delete" => {
                self.command(nsp, &name, args, ack).await
            }
            "ticket:hint" => self.hint(nsp, &args, ack).await,
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
        self.catch_up(&project, start, latest, request.since.is_some())
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
                &[json!({ "ok": true, "seq": seq, "userCount": count })],
            ))
            .await?;
        }
        Ok(())
    }

    /// Sends what the socket missed after `start` from the history stream. When history
    /// cannot show everything up to `latest` (trimmed, expired, Redis down), tells the
    /// client to resync from a snapshot instead.
    async fn catch_up(
        &mut self,
        project: &Arc<str>,
        start: i64,
        latest: Option<i64>,
        resuming: bool,
    ) -> Result<(), Cause> {
        let Some(broker) = self.ctx.broker.clone() else {
            return Ok(());
        };
        let history = broker.history(project, start + 1, None).await;
        let needed = latest.unwrap_or(start);
        let (events, complete) = match history {
            Ok(events) => {
                let from_start = events.first().is_none_or(|e| e.seq == start + 1);
                let contiguous = events.windows(2).all(|w| w[1].seq == w[0].seq + 1);
                let reaches = events.last().map_or(start, |e| e.seq) >= needed;
                let complete = from_start && contiguous && reaches;
                (events, complete)
            }
            Err(error) => {
                tracing::warn!(project.id = %project, %error, "reading history failed");
                (Vec::new(), needed <= start)
            }
        };
        if complete {
            for event in events {
                if resuming {
                    self.ctx.metrics.replayed_events_total.inc();
                }
                self.deliver(event).await?;
            }
            return Ok(());
        }
        let resume_at = events.last().map_or(needed, |e| e.seq.max(needed));
        self.resync(project, "history_unavailable", resume_at).await
    }

    async fn resync(
        &mut self,
        project: &Arc<str>,
        reason: &str,
        resume_at: i64,
    ) -> Result<(), Cause> {
        self.ctx.metrics.resyncs_total.inc();
        if let Some(state) = self.kanban() {
            if let Some(cursor) = state.cursors.get_mut(project) {
                *cursor = (*cursor).max(resume_at);
            }
        }
        let payload = json!({ "projectId": &**project, "reason": reason, "seq": resume_at });
        self.send_packet(socketio::encode_event(
            "/",
            names::PROJECT_RESYNC,
            &[payload],
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
        let latency = (now_ms() - event.ts).max(0) as f64 / 1000.0;
        self.send_raw(event.frame).await?;
        self.ctx.metrics.deliveries_total.inc();
        self.ctx.metrics.delivery_latency_seconds.observe(latency);
        self.ctx
            .metrics
            .fanout_latency_seconds
            .observe(event.received.elapsed().as_secs_f64());
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
            let missing = match &self.ctx.broker {
                Some(broker) => broker
                    .history(&project, last + 1, Some(event.seq - 1))
                    .await
                    .ok(),
                None => None,
            };
            let complete = missing.as_ref().is_some_and(|events| {
                events.len() as i64 == event.seq - 1 - last
                    && events
                        .iter()
                        .zip(last + 1..)
                        .all(|(e, expected)| e.seq == expected)
            });
            match missing {
                Some(events) if complete => {
                    for missed in events {
                        self.ctx.metrics.replayed_events_total.inc();
                        self.deliver(missed).await?;
                    }
                }
                _ => self.resync(&project, "gap", event.seq - 1).await?,
            }
        }
        self.deliver(event).await
    }

    /// An ephemeral "who is dragging / editing which ticket" hint: relayed to the board's
    /// sockets on every replica through Redis pub/sub, never stored, rate-limited per
    /// socket, and expiring on its own (`expiresAt`) unless the client repeats it.
    async fn hint(&mut self, nsp: &str, args: &[Value], ack: Option<u64>) -> Result<(), Cause> {
        let parsed = match args.first() {
            Some(Value::Object(map)) => {
                let project = map
                    .get("projectId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let ticket = map
                    .get("ticketId")
                    .and_then(Value::as_str)
                    .filter(|t| uuid::Uuid::parse_str(t).is_ok());
                let action = map
                    .get("action")
                    .and_then(Value::as_str)
                    .filter(|a| HINT_ACTIONS.contains(a));
                project
                    .zip(ticket.zip(action))
                    .map(|(p, (t, a))| (p, t.to_owned(), a.to_owned()))
            }
            _ => None,
        };
        let Some((project, ticket, action)) = parsed else {
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
        let payload = json!({
            "projectId": project,
            "ticketId": ticket,
            "action": action,
            "userId": user.id,
            "name": user.name,
            "expiresAt": now + HINT_TTL_MS,
        });
        if let Some(broker) = self.ctx.broker.clone() {
            if let Err(error) = broker.publish_hint(&project, &payload).await {
                tracing::debug!(%error, "publishing a hint failed");
                return self
                    .refuse_event(nsp, ack, ErrorCode::Unavailable, "hints are unavailable")
                    .await;
            }
        }
        match ack {
            Some(id) => {
                self.send_packet(socketio::encode_ack(nsp, id, &[json!({ "ok": true })]))
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
            self.send_packet(socketio::encode_ack(nsp, id, &[json!({ "ok": true })]))
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
        let request = match build_command(name, args.into_iter().next()) {
            Ok(request) => request,
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
        tokio::spawn(async move {
            let result = api
                .call(
                    &token,
                    request.method,
                    &request.path,
                    request.body,
                    Some(&request.mutation_id),
                )
                .await;
            let packet = match (result, ack) {
                (Ok(value), Some(id)) => socketio::encode_ack(&nsp, id, &[success(value)]),
                (Err(body), Some(id)) => socketio::encode_ack(&nsp, id, &[failure(body)]),
                (Ok(_), None) => return,
                (Err(body), None) => {
                    let error = serde_json::to_value(body.error).unwrap_or_default();
                    socketio::encode_event(&nsp, names::ERROR, &[error], None)
                }
            };
            let _ = tx.send(crate::session::ToSession::Packet(packet)).await;
        });
        Ok(())
    }
}

/// `{ok: true, ...}` merged with the API's object answer.
fn success(value: Value) -> Value {
    match value {
        Value::Object(mut map) => {
            map.insert("ok".into(), Value::Bool(true));
            Value::Object(map)
        }
        Value::Null => json!({ "ok": true }),
        other => json!({ "ok": true, "result": other }),
    }
}

fn failure(body: ErrorBody) -> Value {
    json!({ "ok": false, "error": body.error })
}

struct CommandRequest {
    method: Method,
    path: String,
    body: Option<Value>,
    mutation_id: String,
}

fn uuid_field(payload: &serde_json::Map<String, Value>, field: &str) -> Result<String, String> {
    payload
        .get(field)
        .and_then(Value::as_str)
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("{field} must be a ticket or project UUID"))
}

/// Copies the listed fields that are present.
fn pick(
    source: &serde_json::Map<String, Value>,
    fields: &[&str],
) -> serde_json::Map<String, Value> {
    fields
        .iter()
        .filter_map(|f| source.get(*f).map(|v| ((*f).to_owned(), v.clone())))
        .collect()
}

/// Maps a command's payload (the original plan's shapes) to an API request.
fn build_command(name: &str, payload: Option<Value>) -> Result<CommandRequest, String> {
    let Some(Value::Object(payload)) = payload else {
        return Err(format!("{name} takes an object"));
    };
    let mutation_id = match payload.get("mutationId") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(id))
            if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id.clone()
        }
        Some(_) => return Err("mutationId must be 1 to 128 visible ASCII characters".into()),
    };
    let (method, path, body) = match name {
        "ticket:move" => {
            let ticket = uuid_field(&payload, "ticketId")?;
            let body = pick(
                &payload,
                &[
                    "toStatus",
                    "position",
                    "beforeId",
                    "afterId",
                    "expectedVersion",
                ],
            );
            (
                Method::POST,
                format!("/api/tickets/{ticket}/move"),
                Some(Value::Object(body)),
            )
        }
        "ticket:create" => {
            let project = uuid_field(&payload, "projectId")?;
            let Some(Value::Object(ticket)) = payload.get("ticket") else {
                return Err("ticket:create takes {projectId, ticket: {title, ...}}".into());
            };
            let body = pick(
                ticket,
                &["title", "description", "priority", "labels", "status"],
            );
            (
                Method::POST,
                format!("/api/projects/{project}/tickets"),
                Some(Value::Object(body)),
            )
        }
        "ticket:update" => {
            let Some(Value::Object(ticket)) = payload.get("ticket") else {
                return Err(
                    "ticket:update takes {ticket: {id, ...fields}, expectedVersion?}".into(),
                );
            };
            let id = uuid_field(ticket, "id")?;
            let mut body = pick(ticket, &["title", "description", "priority", "labels"]);
            if let Some(version) = payload.get("expectedVersion") {
                body.insert("expectedVersion".into(), version.clone());
            }
            (
                Method::PATCH,
                format!("/api/tickets/{id}"),
                Some(Value::Object(body)),
            )
        }
        "ticket:delete" => {
            let ticket = uuid_field(&payload, "ticketId")?;
            let query = match payload.get("expectedVersion").and_then(Value::as_i64) {
                Some(version) => format!("?expectedVersion={version}"),
                None => String::new(),
            };
            (
                Method::DELETE,
                format!("/api/tickets/{ticket}{query}"),
                None,
            )
        }
        other => return Err(format!("unknown command '{other}'")),
    };
    Ok(CommandRequest {
        method,
        path,
        body,
        mutation_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn commands_map_to_api_requests_and_never_put_raw_input_in_paths() {
        let mv = build_command(
            "ticket:move",
            Some(json!({"ticketId": ID, "toStatus": "TODO", "position": 2, "extra": 1})),
        )
        .unwrap();
        assert_eq!(mv.method, Method::POST);
        assert_eq!(mv.path, format!("/api/tickets/{ID}/move"));
        assert_eq!(mv.body, Some(json!({"toStatus": "TODO", "position": 2})));
        assert!(build_command(
            "ticket:move",
            Some(json!({"ticketId": "../projects", "toStatus": "TODO"}))
        )
        .is_err());
        let del = build_command(
            "ticket:delete",
            Some(json!({"ticketId": ID, "expectedVersion": 3, "mutationId": "m1"})),
        )
        .unwrap();
        assert_eq!(del.path, format!("/api/tickets/{ID}?expectedVersion=3"));
        assert_eq!(del.mutation_id, "m1");
        let create = build_command(
            "ticket:create",
            Some(json!({"projectId": ID, "ticket": {"title": "t"}})),
        )
        .unwrap();
        assert_eq!(create.path, format!("/api/projects/{ID}/tickets"));
        let update = build_command(
            "ticket:update",
            Some(json!({"ticket": {"id": ID, "title": "x"}, "expectedVersion": 2})),
        )
        .unwrap();
        assert_eq!(
            update.body,
            Some(json!({"title": "x", "expectedVersion": 2}))
        );
        assert!(build_command("ticket:create", Some(json!("nope"))).is_err());
        assert!(build_command(
            "ticket:move",
            Some(json!({"ticketId": ID, "mutationId": ""}))
        )
        .is_err());
    }
}
