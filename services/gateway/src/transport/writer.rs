//! The session's way to the client: a WebSocket, or a buffer that long-poll GETs drain.

use super::cause::Cause;
use super::polling::PollBuffer;
use super::ws::WsWriter;
use bytestring::ByteString;
use std::sync::Arc;
use std::time::Duration;

pub enum Writer {
    Ws(WsWriter),
    Polling(Arc<PollBuffer>),
}

impl Writer {
    /// Writes one encoded Engine.IO packet. A write that cannot complete within `timeout`
    /// (a WebSocket client stopped reading; a polling client's buffer stayed full with no
    /// GET taking it) means the client cannot keep up.
    pub async fn send(&mut self, frame: ByteString, timeout: Duration) -> Result<(), Cause> {
        match self {
            Writer::Ws(ws) => match tokio::time::timeout(timeout, ws.text(frame)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_closed)) => Err(Cause::TransportError),
                Err(_elapsed) => Err(Cause::SlowConsumer),
            },
            Writer::Polling(buffer) => buffer
                .push_within(frame, timeout)
                .await
                .map_err(|_| Cause::SlowConsumer),
        }
    }

    /// Holds the frames written from now on until [`Writer::uncork`], which writes them
    /// together (a WebSocket; a polling buffer is taken whole by each GET anyway).
    pub fn cork(&self) {
        if let Writer::Ws(ws) = self {
            ws.cork();
        }
    }

    /// Writes what the cork held.
    pub fn uncork(&self) {
        if let Writer::Ws(ws) = self {
            ws.uncork();
        }
    }

    /// Ends the transport for `cause`; for a WebSocket, true when the close frame was
    /// handed over within `timeout` (a client that stopped reading may never take it).
    pub async fn close(self, cause: &Cause, timeout: Duration) -> bool {
        match self {
            // True once the socket took the close frame; the session then ends the TCP
            // connection itself (`WsWriter::end`).
            Writer::Ws(ws) => matches!(
                tokio::time::timeout(timeout, ws.close(cause.close_reason())).await,
                Ok(Ok(()))
            ),
            // A client that POSTed a close gets a noop on its pending GET (as Node does);
            // otherwise the pending GET gets the close packet.
            Writer::Polling(buffer) if *cause == Cause::ClientClosed => {
                buffer.close_quietly();
                true
            }
            Writer::Polling(buffer) => {
                buffer.close();
                true
            }
        }
    }
}
