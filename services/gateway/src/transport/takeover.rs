//! The hand-over of a WebSocket's connection from actix-http. An upgrade request goes
//! through the application like any other request (routing, the Origin check, limits,
//! the access log and metrics); its response is written here, and a `101` that carries a
//! [`Takeover`] gives the connection to its WebSocket, so that actix-http keeps no task
//! and no buffer of it. Any other answer ends the connection once written.

use super::ws::Takeover;
use actix_codec::Framed;
use actix_http::body::{BodySize, MessageBody};
use actix_http::h1::{Codec, Message};
use actix_http::{ConnectionType, Request, Response, StatusCode};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::HttpResponse;
use futures_util::SinkExt;
use tokio::net::TcpStream;

/// Answers the upgrade request `req` with the application `app` and, on a `101` with a
/// [`Takeover`], hands the connection over.
pub async fn serve<S, B>(
    app: &S,
    req: Request,
    mut framed: Framed<TcpStream, Codec>,
) -> Result<(), actix_web::Error>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let mut response: HttpResponse = match app.call(req).await {
        Ok(response) => response.into_parts().1.map_into_boxed_body(),
        Err(error) => error.error_response(),
    };
    let takeover = response.extensions_mut().remove::<Takeover>();
    let (head, body) = response.into_parts();
    let mut head: Response<()> = head.into();
    if head.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(takeover) = takeover {
            framed.send(Message::Item((head, BodySize::None))).await?;
            let parts = framed.into_parts();
            takeover.attach(parts.io, &parts.read_buf);
            return Ok(());
        }
    }
    // Not upgraded: the answer, then the connection ends (the request asked to leave
    // HTTP, so no other request follows on it).
    drop(takeover);
    head.head_mut().set_connection_type(ConnectionType::Close);
    let body = actix_web::body::to_bytes(body)
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    // Head and body in one write: `feed` only buffers, `flush` writes (actix-codec's
    // `close` shuts the socket down without writing what is buffered).
    framed
        .feed(Message::Item((head, BodySize::Sized(body.len() as u64))))
        .await?;
    if !body.is_empty() {
        framed.feed(Message::Chunk(Some(body))).await?;
    }
    framed.feed(Message::Chunk(None)).await?;
    framed.flush().await?;
    framed.close().await?;
    Ok(())
}
