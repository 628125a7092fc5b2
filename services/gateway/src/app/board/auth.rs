//! Who a socket is: its token checked at CONNECT (or an anonymous user where allowed),
//! and the end of the session when that token expires.

use super::state::{BoardSocket, User};
use crate::hub::RoomEvent;
use crate::protocol::socketio::{self, arg};
use crate::transport::{Cause, Io, Refusal};
use kanban_protocol::events::names;
use kanban_protocol::socket::AuthExpired;
use kanban_protocol::{ErrorBody, ErrorCode};
use serde_json::Value;

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

impl BoardSocket {
    pub(super) async fn connect(
        &mut self,
        _io: &mut Io<'_, RoomEvent>,
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
        let user = match (token, &self.board.verifier) {
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
            _ if self.board.settings.gateway.allow_anonymous => {
                let id = format!("anonymous-{}", self.sid);
                User {
                    name: id.clone(),
                    id,
                    token: None,
                }
            }
            _ => return Err(refuse("auth.token is required")),
        };
        self.user = Some(user);
        Ok(())
    }

    /// Tells every connected namespace why the connection is about to close, then ends
    /// the session with [`Cause::TokenExpired`].
    pub(super) async fn token_expired(&mut self, io: &mut Io<'_, RoomEvent>) -> Result<(), Cause> {
        let expired_at = self.token_expiry.map_or(0, |(exp, _)| exp);
        let payload = socketio::arg(&AuthExpired { expired_at });
        let namespaces: Vec<String> = io.namespaces().map(str::to_owned).collect();
        for nsp in namespaces {
            io.emit(&nsp, names::AUTH_EXPIRED, std::slice::from_ref(&payload))
                .await?;
        }
        Err(Cause::TokenExpired)
    }
}
