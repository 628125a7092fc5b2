//! The TCP connection under a WebSocket session: when it is accepted, its small writes
//! are sent at once and its send buffer is bounded; the session ends it itself, so that a
//! client that stopped reading cannot keep a descriptor and kernel memory after its
//! session is gone.

use socket2::SockRef;
use std::net::Shutdown;
use std::time::Duration;
use tokio::net::TcpStream;

/// Sets an accepted socket's `TCP_NODELAY` and bounds its send buffer (`0`: the kernel's
/// default).
///
/// Without `TCP_NODELAY`, Nagle's algorithm holds a small write back while an earlier
/// segment is unacknowledged, and the client may delay its acknowledgement: an event
/// written to an idle socket right after another would wait for that round trip. Frames
/// that are ready together already leave in one write (runs, the cork), so nothing is
/// left for Nagle to coalesce.
pub fn on_accept(stream: &TcpStream, send_buffer: usize) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "setting TCP_NODELAY failed");
    }
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

#[cfg(test)]
mod tests {
    use super::on_accept;
    use socket2::SockRef;
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn an_accepted_socket_sends_small_writes_at_once_within_its_bounded_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let _client = TcpStream::connect(address).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        assert!(
            !accepted.nodelay().expect("nodelay"),
            "Nagle is on by default"
        );
        let default_buffer = SockRef::from(&accepted)
            .send_buffer_size()
            .expect("SO_SNDBUF");

        on_accept(&accepted, 4 * 1024);

        assert!(accepted.nodelay().expect("nodelay"));
        let bounded = SockRef::from(&accepted)
            .send_buffer_size()
            .expect("SO_SNDBUF");
        // Linux doubles the value asked for, for its own bookkeeping.
        assert!(bounded <= 2 * 4 * 1024 + 512, "SO_SNDBUF {bounded}");
        assert!(bounded < default_buffer, "{bounded} < {default_buffer}");
    }
}
