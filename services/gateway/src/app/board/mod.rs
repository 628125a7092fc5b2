//! The Kanban board protocol on a socket, as a transport [`Application`]: authentication
//! at CONNECT ([`auth`]), `project:join` with resume by seq, `project:leave` and delivery
//! in seq order ([`rooms`]), ticket commands forwarded to the API ([`commands`]) and
//! ephemeral hints ([`hints`]); [`state`] holds what they share.

pub mod auth;
pub mod commands;
pub mod hints;
pub mod rooms;
#[cfg(test)]
mod socket_tests;
pub mod state;

use crate::hub::RoomEvent;
use crate::transport::ws::WsWriter;
use crate::transport::{AppFactory, Application, Cause, Io, Refusal, SessionInfo};
use kanban_protocol::events::names;
use kanban_protocol::ErrorCode;
use serde_json::Value;
use state::{Board, BoardSocket};
use std::sync::Arc;
use tokio::time::Instant;

/// Makes one [`BoardSocket`] per session.
#[derive(Clone)]
pub struct BoardApp(pub Arc<Board>);

impl AppFactory for BoardApp {
    type App = BoardSocket;

    fn create(&self, session: &SessionInfo) -> BoardSocket {
        BoardSocket::new(Arc::clone(&self.0), session.sid.clone())
    }
}

impl Application for BoardSocket {
    type Message = RoomEvent;

    async fn connect(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        nsp: &str,
        auth: Option<Value>,
    ) -> Result<(), Refusal> {
        Box::pin(BoardSocket::connect(self, io, nsp, auth)).await
    }

    async fn event(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        nsp: &str,
        name: String,
        args: Vec<Value>,
        ack: Option<u64>,
    ) -> Result<(), Cause> {
        // The client's events are rare next to deliveries, and their futures are large (a
        // join holds an API call and a replay): boxed, they take memory only while they
        // run, instead of making every session's resident future as large as the largest.
        match name.as_str() {
            names::PROJECT_JOIN => Box::pin(self.join(io, nsp, &args, ack)).await,
            names::PROJECT_LEAVE => Box::pin(self.leave(io, nsp, &args, ack)).await,
            names::TICKET_MOVE
            | names::TICKET_CREATE
            | names::TICKET_UPDATE
            | names::TICKET_DELETE => Box::pin(self.command(io, nsp, &name, args, ack)).await,
            names::TICKET_HINT => Box::pin(self.hint(io, nsp, &args, ack)).await,
            _ => {
                let message = format!("unknown event '{name}'");
                io.refuse_event(nsp, ack, ErrorCode::Validation, &message)
                    .await
            }
        }
    }

    async fn message(&mut self, io: &mut Io<'_, RoomEvent>, event: RoomEvent) -> Result<(), Cause> {
        self.room_event(io, event).await
    }

    fn idle(&mut self, writer: Option<&WsWriter>) {
        if !self.cursors.is_empty() {
            self.lane.open(writer, &self.cursors);
        }
    }

    fn resumed(&mut self) {
        self.lane.shut(&mut self.cursors);
    }

    fn deadline(&self) -> Option<Instant> {
        [self.token_expiry.map(|(_, at)| at), self.relay_lag_check]
            .into_iter()
            .flatten()
            .min()
    }

    async fn on_deadline(&mut self, io: &mut Io<'_, RoomEvent>) -> Result<(), Cause> {
        let now = Instant::now();
        if self.token_expiry.is_some_and(|(_, at)| at <= now) {
            return self.token_expired(io).await;
        }
        if self.relay_lag_check.is_some_and(|at| at <= now) {
            Box::pin(self.check_relay_lag(io)).await?;
        }
        Ok(())
    }

    async fn disconnect(&mut self, io: &mut Io<'_, RoomEvent>, _nsp: &str) {
        Box::pin(BoardSocket::disconnect(self, io)).await;
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::socketio::{self, arg};
    use kanban_protocol::socket::{ErrorAck, Hint, JoinAck, OkAck, Resync, ResyncReason};
    use kanban_protocol::{ErrorBody, ErrorCode};
    use serde_json::{json, Value};

    const ID: &str = "6f1c2b9e-0d5e-4a57-9a3e-2d6c1f0b7a11";

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
