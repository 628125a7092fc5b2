//! The echo handlers the official Socket.IO conformance suite expects: on connect to `/`
//! or `/custom`, emit `auth` with the handshake auth; echo `message` as `message-back`;
//! acknowledge `message-with-ack` with its own arguments. For protocol testing only.

use crate::transport::{AppFactory, Application, Cause, Io, Refusal, SessionInfo};
use serde_json::Value;
use std::convert::Infallible;

/// Makes one [`EchoSocket`] per session.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoApp;

impl AppFactory for EchoApp {
    type App = EchoSocket;

    fn create(&self, _session: &SessionInfo) -> EchoSocket {
        EchoSocket::default()
    }
}

/// The echo mode keeps the handshake auth per namespace.
#[derive(Debug, Default)]
pub struct EchoSocket {
    auth: Vec<(String, Value)>,
}

const NAMESPACES: [&str; 2] = ["/", "/custom"];

impl Application for EchoSocket {
    /// Nothing is ever queued for an echo socket.
    type Message = Infallible;

    async fn connect(
        &mut self,
        _io: &mut Io<'_, Infallible>,
        nsp: &str,
        auth: Option<Value>,
    ) -> Result<(), Refusal> {
        if !NAMESPACES.contains(&nsp) {
            return Err(Refusal {
                message: "Invalid namespace".into(),
                data: None,
            });
        }
        self.auth.push((
            nsp.to_owned(),
            auth.unwrap_or_else(|| Value::Object(Default::default())),
        ));
        Ok(())
    }

    async fn connected(&mut self, io: &mut Io<'_, Infallible>, nsp: &str) -> Result<(), Cause> {
        let auth = self
            .auth
            .iter()
            .find(|(n, _)| n == nsp)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| Value::Object(Default::default()));
        // The conformance suite reads the CONNECT reply and this event with two one-shot
        // listeners; frames that reach it in one TCP read fire both before the second
        // listener exists. Node's server happens to write them apart; so do we, here only.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        io.emit(nsp, "auth", &[auth]).await
    }

    async fn event(
        &mut self,
        io: &mut Io<'_, Infallible>,
        nsp: &str,
        name: String,
        args: Vec<Value>,
        ack: Option<u64>,
    ) -> Result<(), Cause> {
        match (name.as_str(), ack) {
            ("message", _) => io.emit(nsp, "message-back", &args).await,
            ("message-with-ack", Some(id)) => io.ack(nsp, id, &args).await,
            _ => Ok(()),
        }
    }

    async fn message(
        &mut self,
        _io: &mut Io<'_, Infallible>,
        never: Infallible,
    ) -> Result<(), Cause> {
        match never {}
    }

    async fn disconnect(&mut self, _io: &mut Io<'_, Infallible>, _nsp: &str) {}
}
