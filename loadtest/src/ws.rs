//! How the load tool's clients open their WebSockets: the one place for their settings.
//!
//! tungstenite zero-fills its whole read buffer before every read, including the reads
//! that find nothing; with its default 128 KiB buffer that `memset` took 39 % of the
//! tool's CPU in a `fanout` run at 100k deliveries/s (`perf record` of the tool). The
//! server's frames are a few hundred bytes, so a buffer of 8 KiB still reads dozens of
//! them at once when a client is behind, and a larger frame grows it as needed.

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, handshake::client::Response};

/// The bytes a client reads from its socket at most per read.
const READ_BUFFER: usize = 8 * 1024;

/// A load-tool client's WebSocket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `url` with the load tool's client settings.
pub async fn connect(url: &str) -> Result<(Socket, Response), tungstenite::Error> {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    tokio_tungstenite::connect_async_with_config(url, Some(config), false).await
}
