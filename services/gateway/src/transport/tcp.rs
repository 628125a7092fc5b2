//! The TCP connection under a WebSocket session: its send buffer is bounded when it is
//! accepted, and the session can end it itself, so that a client that stopped reading
//! cannot keep a descriptor and kernel memory after its session is gone.
//!
//! actix-web owns the connection and, once a response body ends, waits for it to be
//! flushed with no deadline; a peer that never reads keeps it ESTABLISHED forever. The
//! session therefore holds a duplicate descriptor of the socket (taken at accept, so it
//! can never name another connection) and shuts the socket down when it ends: the
//! connection's own reads and writes then fail at once and actix-web drops it.

use actix_web::dev::Extensions;
use socket2::{SockRef, Socket};
use std::any::Any;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

/// A duplicate descriptor of an accepted connection, in the connection's data
/// (`HttpRequest::conn_data`).
#[derive(Clone)]
pub struct ConnSocket(pub Arc<Socket>);

/// Bounds the accepted socket's send buffer and keeps a duplicate of it for its sessions.
pub fn on_accept(connection: &dyn Any, extensions: &mut Extensions, send_buffer: usize) {
    let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let socket = SockRef::from(stream);
    if send_buffer > 0 {
        if let Err(error) = socket.set_send_buffer_size(send_buffer) {
            tracing::debug!(%error, "setting SO_SNDBUF failed");
        }
    }
    match socket.try_clone() {
        Ok(duplicate) => {
            extensions.insert(ConnSocket(Arc::new(duplicate)));
        }
        Err(error) => tracing::warn!(%error, "duplicating an accepted socket failed"),
    }
}

/// How a session ends its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The peer finished the closing handshake: FIN after what was sent.
    Graceful,
    /// The peer did not answer (stopped reading, gone): reset, so that the kernel drops
    /// whatever is still queued for it at once rather than retrying for minutes.
    Abortive,
}

/// Shuts the connection down; actix-web then sees it end and releases its descriptor.
pub fn end(socket: &Socket, ending: Ending) {
    if ending == Ending::Abortive {
        // SO_LINGER 0: the last close sends RST and frees the send queue.
        if let Err(error) = socket.set_linger(Some(Duration::ZERO)) {
            tracing::debug!(%error, "setting SO_LINGER failed");
        }
    }
    // ENOTCONN when the peer is already gone: nothing left to do then.
    let _ = socket.shutdown(Shutdown::Both);
}
