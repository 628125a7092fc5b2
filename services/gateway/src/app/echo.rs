//! The echo handlers the official Socket.IO conformance suite expects: on connect to `/`
//! or `/custom`, emit `auth` with the handshake auth; echo `message` as `message-back`;
//! acknowledge `message-with-ack` with its own arguments. For protocol testing only.

use crate::protocol::socketio;
use crate::session::{AppState, Cause, Refusal, Session};

/// The echo mode keeps the handshake auth per namespace.
#[derive(Debug, Default)]
pub struct EchoState {
    auth: Vec<(String, serde_json::Value)>,
}

const NAMESPACES: [&str; 2] = ["/", "/custom"];

impl Session {
    pub(crate) fn echo_connect(
        &mut self,
        nsp: &str,
        auth: Option<serde_json::Value>,
    ) -> Result<(), Refusal> {
        if !NAMESPACES.contains(&nsp) {
            return Err(Refusal {
                message: "Invalid namespace".into(),
                data: None,
            });
        }
        if let AppState::Echo(state) = &mut self.app {
            state.auth.push((
                nsp.to_owned(),
                auth.unwrap_or_else(|| serde_json::json!({})),
            ));
        }
        Ok(())
    }

    pub(crate) async fn echo_after_connect(&mut self, nsp: &str) -> Result<(), Cause> {
        let auth = match &self.app {
            AppState::Echo(state) => state
                .auth
                .iter()
                .find(|(n, _)| n == nsp)
                .map(|(_, a)| a.clone()),
            AppState::Kanban(_) => None,
        }
        .unwrap_or_else(|| serde_json::json!({}));
        // The conformance suite reads the CONNECT reply and this event with two one-shot
        // listeners; frames that reach it in one TCP read fire both before the second
        // listener exists. Node's server happens to write them apart; so do we, here only.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.send_packet(socketio::encode_event(nsp, "auth", &[auth], None))
            .await
    }

    pub(crate) async fn echo_event(
        &mut self,
        nsp: &str,
        name: String,
        args: Vec<serde_json::Value>,
        ack: Option<u64>,
    ) -> Result<(), Cause> {
        match (name.as_str(), ack) {
            ("message", _) => {
                self.send_packet(socketio::encode_event(nsp, "message-back", &args, None))
                    .await
            }
            ("message-with-ack", Some(id)) => {
                self.send_packet(socketio::encode_ack(nsp, id, &args)).await
            }
            _ => Ok(()),
        }
    }
}
