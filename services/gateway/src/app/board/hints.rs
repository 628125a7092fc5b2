//! `ticket:hint`: the ephemeral "who is dragging / editing which ticket" signal, relayed to
//! the board's sockets on every replica through Redis pub/sub, never stored,
//! rate-limited per socket, and expiring on its own unless repeated.

use super::state::BoardSocket;
use crate::hub::RoomEvent;
use crate::protocol::socketio::{arg, encode_ack};
use crate::transport::{Cause, Io};
use kanban_protocol::socket::{Hint, HintCommand, OkAck};
use kanban_protocol::ErrorCode;
use serde::Deserialize;
use serde_json::Value;

/// A hint expires this long after it was sent unless repeated.
const HINT_TTL_MS: i64 = 5_000;
/// At most one hint per socket per this many ms.
const HINT_MIN_GAP_MS: i64 = 200;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl BoardSocket {
    pub(super) async fn hint(
        &mut self,
        io: &mut Io<'_, RoomEvent>,
        nsp: &str,
        args: &[Value],
        ack: Option<u64>,
    ) -> Result<(), Cause> {
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
            return io
                .refuse_event(nsp, ack, ErrorCode::Validation, message)
                .await;
        };
        if !self.cursors.contains_key(project.as_str()) {
            return io
                .refuse_event(nsp, ack, ErrorCode::Forbidden, "join the board first")
                .await;
        }
        let now = now_ms();
        if now - self.last_hint_ms < HINT_MIN_GAP_MS {
            self.board.metrics.rate_limited_total.inc();
            return io
                .refuse_event(
                    nsp,
                    ack,
                    ErrorCode::RateLimited,
                    "hints are limited to 5 per second",
                )
                .await;
        }
        self.last_hint_ms = now;
        let Some(user) = self.user.clone() else {
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
        if let Err(error) = self.board.broker.publish_hint(&hint).await {
            tracing::debug!(%error, "publishing a hint failed");
            return io
                .refuse_event(nsp, ack, ErrorCode::Unavailable, "hints are unavailable")
                .await;
        }
        match ack {
            Some(id) => {
                io.send_packet(encode_ack(nsp, id, &[arg(&OkAck::OK)]))
                    .await
            }
            None => Ok(()),
        }
    }
}
