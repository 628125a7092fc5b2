//! The session's way to the client: a WebSocket, or a buffer that long-poll GETs drain.

use super::polling::PollBuffer;
use super::Cause;
use bytestring::ByteString;
use std::sync::Arc;
use std::time::Duration;

pub enum Writer {
    Ws(actix_ws::Session),
    Polling(Arc<PollBuffer>),
}

impl Writer {
    /// Writes one encoded Engine.IO packet. A WebSocket write that cannot complete within
    /// `timeout` (the client stopped reading) and a full polling buffer both mean the
    /// client cannot keep up.
    pub async fn send(&mut self, frame: ByteString, timeout: Duration) -> Result<(), Cause> {
        match self {
            Writer::Ws(ws) => match tokio::time::timeout(timeout, ws.text(frame)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_closed)) => Err(Cause::TransportError),
                Err(_elapsed) => Err(Cause::SlowConsumer),
            },
            Writer::Polling(buffer) => buffer.push(frame).map_err(|_| Cause::SlowConsumer),
        }
    }

    pub async fn close(self, cause: &Cause) {
        match self {
            // A client that stopped reading may never take the close frame: do not wait
            // for it. Dropping the session ends the response stream and the connection.
            Writer::Ws(ws) => {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), ws.close(cause.close_reason()))
                        .await;
            }
            // A client that POSTed a close gets a noop on its pending GET (as Node does);
            // otherwise the pending GET gets the close packet.
            Writer::Polling(buffer) if *cause == Cause::ClientClosed => buffer.close_quietly(),
            Writer::Polling(buffer) => buffer.close(),
        }
    }
}
