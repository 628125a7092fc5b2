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
    let address = socket_address(url)
        .ok_or_else(|| tungstenite::Error::Url(UrlError::UnableToConnect(url.to_owned())))?;
    let stream = apart.connect(address).await?;
    tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), Some(config()))
        .await
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// The `ip:port` of a `ws://ip:port/…` URL (the servers' side of `--clients-apart` is an
/// address, not a name).
fn socket_address(url: &str) -> Option<std::net::SocketAddr> {
    url.strip_prefix("ws://")?.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::socket_address;

    #[test]
    fn a_websocket_url_gives_its_socket_address_and_a_name_gives_none() {
        let address = socket_address("ws://10.213.7.1:4100/socket.io/?EIO=4&transport=websocket");
        assert_eq!(address, Some("10.213.7.1:4100".parse().expect("address")));
        assert_eq!(socket_address("ws://localhost:4100/socket.io/"), None);
        assert_eq!(socket_address("http://10.213.7.1:4100/"), None);
    }
}
