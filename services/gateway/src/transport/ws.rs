//! A session's WebSocket without a channel in between: the session encodes each frame
//! straight into the connection's outbox, which the HTTP response body hands to actix-http
//! in one piece when the connection task next writes. So a delivery is one copy of the
//! frame and one wake-up of the connection, frames queued together leave in one write, and
//! an idle connection keeps no write buffer of its own (the outbox is freed once drained).
//! The read side decodes the client's frames from the request payload.

use crate::locks;
use actix_codec::{Decoder, Encoder};
use actix_http::ws::{Codec, Frame, Message, ProtocolError};
use actix_web::body::{BodySize, MessageBody};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use bytestring::ByteString;
use futures_util::StreamExt;
use prometheus::IntCounter;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::{oneshot, Notify};

pub use actix_http::ws::{CloseCode, CloseReason};

/// Bytes the outbox may hold before a writer waits for the connection to take them: a
/// client that reads nothing is then held up here (and closed as slow after the write
/// timeout) rather than growing its outbox without bound.
const OUTBOX_LIMIT: usize = 64 * 1024;

/// The most the response body hands the connection at once: the connection copies each
/// chunk into its own write buffer (8 KiB to start with), which keeps any capacity a
/// larger chunk made it grow to for as long as the connection lives.
pub const OUTBOX_CHUNK: usize = 4 * 1024;

/// The WebSocket is closed (by us, or the connection is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// What the client sent, decoded.
#[derive(Debug)]
pub enum Incoming {
    Text(ByteString),
    /// A binary or continuation frame (the protocol uses neither).
    Binary,
    Ping(Bytes),
    Pong,
    Close,
}

/// Accepts a WebSocket handshake: the `101` response whose body is the connection's
/// outbox, the writer, and the reader of frames up to `max_frame` bytes.
pub fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    max_frame: usize,
    poisoned: IntCounter,
) -> Result<(HttpResponse, WsWriter, WsReader), actix_http::ws::HandshakeError> {
    let mut response = actix_http::ws::handshake(req.head())?;
    let outbox = Arc::new(Outbox {
        state: Mutex::new(State::default()),
        space: Notify::new(),
        poisoned,
    });
    let (gone_tx, gone_rx) = oneshot::channel();
    let body = OutboxBody {
        outbox: Arc::clone(&outbox),
        _gone: gone_tx,
    };
    let response = match response.message_body(body.boxed()) {
        Ok(response) => response.into(),
        // Only a builder already in error fails here; the handshake's never is.
        Err(error) => HttpResponse::from_error(error),
    };
    let reader = WsReader {
        payload,
        buf: BytesMut::new(),
        codec: Codec::new().max_size(max_frame),
        body_gone: Some(gone_rx),
        ended: false,
    };
    let writer = WsWriter {
        shared: Arc::new(WriterShared { outbox }),
    };
    Ok((response, writer, reader))
}

/// What the session and the response body share.
struct Outbox {
    state: Mutex<State>,
    /// Woken when the body took the outbox's bytes (or went away).
    space: Notify,
    poisoned: IntCounter,
}

#[derive(Default)]
struct State {
    /// Encoded frames not yet taken by the connection.
    buf: BytesMut,
    codec: Codec,
    /// The connection task, waiting for bytes.
    waker: Option<Waker>,
    /// A close frame was queued: nothing follows it, and the body ends once it is taken.
    closed: bool,
    /// The response body was dropped: the connection is over.
    gone: bool,
    /// A writer waits for room (so the body wakes it when it takes bytes).
    writer_waiting: bool,
}

/// The session's end of the WebSocket. Clones write to the same connection (the upgrade's
/// reader answers pings with one); when the last is dropped, the response ends.
#[derive(Clone)]
pub struct WsWriter {
    shared: Arc<WriterShared>,
}

struct WriterShared {
    outbox: Arc<Outbox>,
}

impl Drop for WriterShared {
    fn drop(&mut self) {
        let mut state = self.outbox.state();
        state.closed = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

impl WsWriter {
    /// Queues a text frame, waiting while the outbox is full.
    pub async fn text(&self, text: impl Into<ByteString>) -> Result<(), Closed> {
        self.write(Message::Text(text.into()), false).await
    }

    /// Answers a ping.
    pub async fn pong(&self, bytes: &[u8]) -> Result<(), Closed> {
        self.write(Message::Pong(Bytes::copy_from_slice(bytes)), false)
            .await
    }

    /// Queues the close frame; the connection's response ends once it is taken.
    pub async fn close(&self, reason: Option<CloseReason>) -> Result<(), Closed> {
        self.write(Message::Close(reason), true).await
    }

    async fn write(&self, message: Message, closing: bool) -> Result<(), Closed> {
        let outbox = &self.shared.outbox;
        let mut message = Some(message);
        loop {
            if outbox.try_write(&mut message, closing, false)? {
                return Ok(());
            }
            // Full: wait for the connection to take what is there. Registered before the
            // second look, so that a drain between the two still wakes this writer.
            let space = outbox.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            if outbox.try_write(&mut message, closing, true)? {
                return Ok(());
            }
            space.await;
        }
    }
}

impl Outbox {
    fn state(&self) -> MutexGuard<'_, State> {
        locks::lock(&self.state, "websocket outbox", &self.poisoned)
    }

    /// Encodes `message` into the outbox if it has room (true), else leaves it (false)
    /// and, when the writer is about to `wait`, asks the body to wake it.
    fn try_write(
        &self,
        message: &mut Option<Message>,
        closing: bool,
        wait: bool,
    ) -> Result<bool, Closed> {
        let mut state = self.state();
        if state.closed || state.gone {
            return Err(Closed);
        }
        if state.buf.len() >= OUTBOX_LIMIT {
            state.writer_waiting |= wait;
            return Ok(false);
        }
        let State { buf, codec, .. } = &mut *state;
        if let Some(message) = message.take() {
            // Encoding a server frame into a buffer cannot fail.
            codec.encode(message, buf).map_err(|_| Closed)?;
        }
        state.closed = closing;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
        Ok(true)
    }
}

/// The response body: what the session queued, one chunk per poll.
struct OutboxBody {
    outbox: Arc<Outbox>,
    /// Dropped with the body: tells the reader that the connection is over.
    _gone: oneshot::Sender<()>,
}

impl MessageBody for OutboxBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let (chunk, wake_writer) = {
            let mut state = self.outbox.state();
            if state.buf.is_empty() {
                if state.closed {
                    return Poll::Ready(None);
                }
                if !state
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.waker = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            let chunk = if state.buf.len() > OUTBOX_CHUNK {
                state.buf.split_to(OUTBOX_CHUNK).freeze()
            } else {
                // The rest, taken whole, so the outbox keeps no capacity while the
                // connection is idle.
                std::mem::take(&mut state.buf).freeze()
            };
            (chunk, std::mem::take(&mut state.writer_waiting))
        };
        if wake_writer {
            self.outbox.space.notify_waiters();
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}

impl Drop for OutboxBody {
    fn drop(&mut self) {
        self.outbox.state().gone = true;
        self.outbox.space.notify_waiters();
    }
}

/// The client's frames, decoded from the request payload.
pub struct WsReader {
    payload: web::Payload,
    buf: BytesMut,
    codec: Codec,
    /// Fires when the response body is dropped: the payload may then never end.
    body_gone: Option<oneshot::Receiver<()>>,
    ended: bool,
}

impl WsReader {
    /// The next frame; `None` once the client or the connection is gone. Cancel-safe:
    /// bytes are buffered in the same poll that receives them.
    pub async fn recv(&mut self) -> Option<Result<Incoming, ProtocolError>> {
        let WsReader {
            payload,
            buf,
            codec,
            body_gone,
            ended,
        } = self;
        loop {
            match codec.decode(buf) {
                Ok(Some(frame)) => return Some(incoming(frame)),
                Ok(None) => {}
                // The parser skips an oversized frame, so reading can go on: the peer's
                // answer to the close frame that follows is still read.
                Err(error) => return Some(Err(error)),
            }
            if *ended {
                return None;
            }
            let gone = async {
                match body_gone.as_mut() {
                    Some(gone) => {
                        let _ = gone.await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                chunk = payload.next() => match chunk {
                    Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
                    Some(Err(error)) => {
                        *ended = true;
                        return Some(Err(ProtocolError::Io(std::io::Error::other(error.to_string()))));
                    }
                    None => *ended = true,
                },
                () = gone => {
                    *body_gone = None;
                    *ended = true;
                }
            }
        }
    }
}

fn incoming(frame: Frame) -> Result<Incoming, ProtocolError> {
    Ok(match frame {
        Frame::Text(bytes) => match ByteString::try_from(bytes) {
            Ok(text) => Incoming::Text(text),
            Err(_) => {
                return Err(ProtocolError::Io(std::io::Error::other(
                    "a text frame that is not UTF-8",
                )))
            }
        },
        Frame::Binary(_) | Frame::Continuation(_) => Incoming::Binary,
        Frame::Ping(bytes) => Incoming::Ping(bytes),
        Frame::Pong(_) => Incoming::Pong,
        Frame::Close(_) => Incoming::Close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use actix_web::test::TestRequest;
    use actix_web::FromRequest;
    use std::time::Duration;

    async fn websocket() -> (HttpResponse, WsWriter, WsReader) {
        let (req, mut payload) = TestRequest::get()
            .insert_header(("upgrade", "websocket"))
            .insert_header(("connection", "upgrade"))
            .insert_header(("sec-websocket-version", "13"))
            .insert_header(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="))
            .to_http_parts();
        let payload = web::Payload::from_request(&req, &mut payload)
            .await
            .unwrap();
        handle(
            &req,
            payload,
            1_000,
            IntCounter::new("poisoned", "poisoned").unwrap(),
        )
        .unwrap()
    }

    /// The next chunk the connection would take, if one is ready.
    fn next_chunk(body: &mut actix_web::body::BoxBody) -> Option<Option<Bytes>> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        match Pin::new(body).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(bytes))) => Some(Some(bytes)),
            Poll::Ready(None) => Some(None),
            Poll::Ready(Some(Err(_))) | Poll::Pending => None,
        }
    }

    #[actix_web::test]
    async fn frames_queued_together_leave_in_chunks_of_at_most_4_kib_and_the_close_ends_the_body() {
        let (response, writer, _reader) = websocket().await;
        assert_eq!(response.status().as_u16(), 101);
        let mut body = response.into_body();
        assert!(next_chunk(&mut body).is_none(), "nothing queued yet");
        let frame = "x".repeat(1_000);
        for _ in 0..10 {
            writer.text(frame.clone()).await.unwrap();
        }
        writer.close(None).await.unwrap();
        let mut sizes = Vec::new();
        while let Some(Some(chunk)) = next_chunk(&mut body) {
            sizes.push(chunk.len());
        }
        // 10 frames of 1 004 bytes (4-byte header) and a 2-byte close frame.
        assert_eq!(sizes.iter().sum::<usize>(), 10 * 1_004 + 2);
        assert!(sizes.iter().all(|&s| s <= OUTBOX_CHUNK), "{sizes:?}");
        assert_eq!(sizes.len(), 3, "{sizes:?}");
        assert_eq!(
            next_chunk(&mut body),
            Some(None),
            "the body ends after the close"
        );
        assert_eq!(writer.text("late").await, Err(Closed));
    }

    #[actix_web::test]
    async fn a_full_outbox_holds_the_writer_until_the_connection_takes_its_bytes() {
        let (response, writer, _reader) = websocket().await;
        let mut body = response.into_body();
        let frame = "y".repeat(8 * 1024);
        for _ in 0..8 {
            writer.text(frame.clone()).await.unwrap();
        }
        // 64 KiB and more are waiting: the next write waits.
        let blocked = tokio::time::timeout(Duration::from_millis(50), writer.text("z")).await;
        assert!(blocked.is_err(), "a write into a full outbox must wait");
        let waiting = {
            let writer = writer.clone();
            tokio::spawn(async move { writer.text("z").await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        while let Some(Some(_)) = next_chunk(&mut body) {}
        let written = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(written.unwrap().unwrap(), Ok(()));
    }

    #[actix_web::test]
    async fn the_body_ends_when_the_last_writer_is_gone_and_writes_fail_once_the_body_is() {
        let (response, writer, _reader) = websocket().await;
        let mut body = response.into_body();
        let clone = writer.clone();
        drop(writer);
        assert!(next_chunk(&mut body).is_none(), "a clone still writes");
        drop(clone);
        assert_eq!(next_chunk(&mut body), Some(None));

        let (response, writer, mut reader) = websocket().await;
        drop(response);
        assert_eq!(writer.text("to nobody").await, Err(Closed));
        let ended = tokio::time::timeout(Duration::from_secs(5), reader.recv()).await;
        assert!(
            matches!(ended, Ok(None)),
            "the reader ends with the connection"
        );
    }
}
