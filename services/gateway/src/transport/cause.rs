//! Why a session ends: the close causes, their metric labels and WebSocket close frames.

use super::ws::{CloseCode, CloseReason};

/// Why a session ended. The WebSocket close codes are part of the documented protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The client closed the transport or sent an Engine.IO close.
    ClientClosed,
    /// No pong within pingTimeout.
    PingTimeout,
    /// No Socket.IO CONNECT within connectTimeout.
    ConnectTimeout,
    /// A packet that breaks the protocol (malformed, binary, wrong direction).
    ProtocolError(String),
    /// A message over maxPayload.
    TooBig,
    /// The socket's queue filled up: it could not keep up with its rooms.
    SlowConsumer,
    /// The replica is draining.
    Shutdown,
    /// Writing to the transport failed.
    TransportError,
    /// The socket's token reached its `exp` (plus the leeway): reconnect with a fresh one.
    TokenExpired,
}

impl Cause {
    /// Every `(reason, code)` pair of [`Cause::labels`], for registering the series of
    /// `closes_total` before the first close.
    pub const LABELS: [(&'static str, &'static str); 9] = [
        ("client_closed", "none"),
        ("ping_timeout", "4001"),
        ("connect_timeout", "4002"),
        ("protocol_error", "1002"),
        ("too_big", "1009"),
        ("slow_consumer", "4008"),
        ("shutdown", "1001"),
        ("transport_error", "none"),
        ("token_expired", "4005"),
    ];

    /// The `reason` and `code` labels of `closes_total` (the close code as a number, or
    /// `none` when no close frame is sent), from [`Cause::LABELS`].
    pub fn labels(&self) -> (&'static str, &'static str) {
        let index = match self {
            Cause::ClientClosed => 0,
            Cause::PingTimeout => 1,
            Cause::ConnectTimeout => 2,
            Cause::ProtocolError(_) => 3,
            Cause::TooBig => 4,
            Cause::SlowConsumer => 5,
            Cause::Shutdown => 6,
            Cause::TransportError => 7,
            Cause::TokenExpired => 8,
        };
        Self::LABELS[index]
    }

    /// The WebSocket close frame for this cause (`None`: the peer is already gone).
    pub fn close_reason(&self) -> Option<CloseReason> {
        let (code, text) = match self {
            Cause::ClientClosed | Cause::TransportError => return None,
            Cause::PingTimeout => (CloseCode::Other(4001), "ping timeout"),
            Cause::ConnectTimeout => (CloseCode::Other(4002), "connect timeout"),
            Cause::ProtocolError(_) => (CloseCode::Protocol, "protocol error"),
            Cause::TooBig => (CloseCode::Size, "message too big"),
            Cause::SlowConsumer => (CloseCode::Other(4008), "slow consumer"),
            Cause::Shutdown => (CloseCode::Away, "server shutting down"),
            Cause::TokenExpired => (CloseCode::Other(4005), "token expired"),
        };
        Some(CloseReason {
            code,
            description: Some(text.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Cause;

    #[test]
    fn close_labels_name_the_close_code_that_is_sent() {
        let causes = [
            Cause::ClientClosed,
            Cause::PingTimeout,
            Cause::ConnectTimeout,
            Cause::ProtocolError("x".into()),
            Cause::TooBig,
            Cause::SlowConsumer,
            Cause::Shutdown,
            Cause::TransportError,
            Cause::TokenExpired,
        ];
        for cause in &causes {
            let sent = cause
                .close_reason()
                .map_or_else(|| "none".to_owned(), |r| u16::from(r.code).to_string());
            assert_eq!(cause.labels().1, sent, "{cause:?}");
        }
        let mut reasons: Vec<_> = causes.iter().map(|c| c.labels().0).collect();
        reasons.dedup();
        assert_eq!(
            reasons.len(),
            Cause::LABELS.len(),
            "one label pair per cause"
        );
    }
}
