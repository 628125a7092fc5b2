//! How the load tool's clients open their WebSockets: the one place for their settings.
//!
//! tungstenite zero-fills its whole read buffer before every read, including the reads
//! that find nothing; with its default 128 KiB buffer that `memset` took 39 % of the
//! tool's CPU in a `fanout` run at 100k deliveries/s (`perf record` of the tool). The
//! server's frames are a few hundred bytes, so a buffer of 8 KiB still reads dozens of
//! them at once when a client is behind, and a larger frame grows it as needed.

use crate::apart::Apart;
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, handshake::client::Response};
use tokio_tungstenite::MaybeTlsStream;

/// The bytes a client reads from its socket at most per read.
const READ_BUFFER: usize = 8 * 1024;

/// A load-tool client's WebSocket.
pub type Socket = tokio_tungstenite::WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `url` with the load tool's client settings.
pub async fn connect(url: &str) -> Result<(Socket, Response), tungstenite::Error> {
    tokio_tungstenite::connect_async_with_config(url, Some(config()), false).await
}

/// Like [`connect`], from the clients' own namespace when `apart` is given
/// (`--clients-apart`); `url` is `ws://ip:port/…`.
pub async fn connect_from(
    url: &str,
    apart: Option<&Apart>,
) -> Result<(Socket, Response), tungstenite::Error> {
    let Some(apart) = apart else {
        return connect(url).await;
    };
    let address = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.parse().ok())
        .ok_or(tungstenite::Error::Url(UrlError::UnableToConnect(
            url.to_owned(),
        )))?;
    let stream = apart.connect(address).await?;
    tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), Some(config()))
        .await
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}
