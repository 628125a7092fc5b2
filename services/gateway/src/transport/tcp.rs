//! The TCP connection under a WebSocket session: its send buffer is bounded when it is
//! accepted, and the session ends it itself, so that a client that stopped reading cannot
//! keep a descriptor and kernel memory after its session is gone.

use socket2::SockRef;
use std::net::Shutdown;
use std::time::Duration;
use tokio::net::TcpStream;

/// Bounds an accepted socket's send buffer (`0`: the kernel's default).
pub fn on_accept(stream: &TcpStream, send_buffer: usize) {
    if send_buffer > 0 {
        if let Err(error) = SockRef::from(stream).set_send_buffer_size(send_buffer) {
            tracing::debug!(%error, "setting SO_SNDBUF failed");
        }
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

/// Shuts the connection down: its reads and writes fail at once, and its descriptor is
/// released with the last handle.
pub fn end(stream: &TcpStream, ending: Ending) {
    let socket = SockRef::from(stream);
    if ending == Ending::Abortive {
        // SO_LINGER 0: the last close sends RST and frees the send queue.
        if let Err(error) = socket.set_linger(Some(Duration::ZERO)) {
            tracing::debug!(%error, "setting SO_LINGER failed");
        }
    }
    // ENOTCONN when the peer is already gone: nothing left to do then.
    let _ = socket.shutdown(Shutdown::Both);
}
