//! A session's WebSocket on its own TCP stream. The handshake is answered by actix-web
//! (routing, Origin, limits, the access log); once its `101` is written, actix-http hands
//! the connection over ([`super::takeover`]) and keeps nothing of it: no connection task,
//! no read or write buffer. A frame is written by the session itself, its header and its
//! payload in one `writev` straight from the shared frame, so a delivery is one wake-up
//! (the session's) and no copy; only what the kernel does not take at once is copied into
//! an outbox, which a flush task writes when the socket drains and frees once empty. The
//! read side decodes the client's frames from the stream into a buffer that is freed
//! whenever it is empty.

use crate::locks;
use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, ProtocolError};
use actix_web::body::BoxBody;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use bytestring::ByteString;
use prometheus::IntCounter;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpStream;
use tokio::sync::Notify;

pub use actix_http::ws::{CloseCode, CloseReason};

/// Bytes the outbox may hold before a writer waits for the socket to drain: a client that
/// reads nothing is then held up here (and closed as slow after the write timeout) rather
/// than growing its outbox without bound.
const OUTBOX_LIMIT: usize = 64 * 1024;

/// The most a cork holds before it writes: frames written together leave in writes of
/// about this size.
const CORK_LIMIT: usize = 16 * 1024;

/// The most read from the socket at once (from a buffer on the stack).
const READ_CHUNK: usize = 4 * 1024;

/// The most frames one `writev` carries (two slices each: header and payload); a longer
/// run is written in several.
const WRITEV_FRAMES: usize = 32;

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PONG: u8 = 0xA;

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

/// Accepts a WebSocket handshake: the `101` response (with the [`Takeover`] that
/// hands the connection to this WebSocket once it is written, in its extensions), the
/// writer, and the reader of frames up to `max_frame` bytes.
pub fn handle(
    req: &HttpRequest,
    max_frame: usize,
    poisoned: IntCounter,
) -> Result<(HttpResponse, WsWriter, WsReader), actix_http::ws::HandshakeError> {
    let mut response = actix_http::ws::handshake(req.head())?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        space: Notify::new(),
        attached: Notify::new(),
        poisoned,
    });
    let reader = WsReader {
        shared: Arc::clone(&shared),
        stream: None,
        buf: BytesMut::new(),
        codec: Codec::new().max_size(max_frame),
        ended: false,
    };
    let writer = WsWriter {
        handle: Arc::new(WriterHandle {
            shared: Arc::clone(&shared),
        }),
    };
    let takeover = Takeover {
        shared: Some(shared),
    };
    let response = match response.message_body(BoxBody::new(())) {
        Ok(response) => {
            let mut response = HttpResponse::from(response);
            response.extensions_mut().insert(takeover);
            response
        }
        // Only a builder already in error fails here (the handshake's never is); the
        // dropped takeover tells the writer and the reader there is no connection.
        Err(error) => HttpResponse::from_error(error),
    };
    Ok((response, writer, reader))
}

/// In the `101` response's extensions: gives the WebSocket its connection once the
/// response is written. Dropped unused (the response was never written), it tells the
/// writer and the reader that the connection is gone.
pub struct Takeover {
    shared: Option<Arc<Shared>>,
}

impl Takeover {
    /// The connection is the WebSocket's from now on; `read` holds what the client sent
    /// after the handshake and the HTTP layer had already read.
    pub fn attach(mut self, stream: TcpStream, read: &[u8]) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let stream = Arc::new(stream);
        let flush = {
            let mut state = shared.state();
            if state.gone {
                return;
            }
            state.stream = Some(Arc::clone(&stream));
            if !read.is_empty() {
                state.early = Some(Bytes::copy_from_slice(read));
            }
            // What the session wrote before the 101 left waits in the outbox.
            let flush = !state.buf.is_empty();
            state.flushing = flush;
            flush
        };
        shared.attached.notify_waiters();
        if flush {
            tokio::spawn(flush_outbox(Arc::clone(&shared), stream));
        }
    }
}

impl Drop for Takeover {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.set_gone();
        }
    }
}

/// What the writers, the reader, the takeover and a flush task share.
struct Shared {
    state: Mutex<State>,
    /// Woken when the outbox drained (or the connection went away).
    space: Notify,
    /// Woken when the connection is attached (or will never be).
    attached: Notify,
    poisoned: IntCounter,
}

#[derive(Default)]
struct State {
    /// The connection, once the handshake's response is written.
    stream: Option<Arc<TcpStream>>,
    /// What the client sent right after its handshake, for the reader.
    early: Option<Bytes>,
    /// Encoded frames the socket did not take yet. Empty and without capacity while
    /// the socket keeps up.
    buf: BytesMut,
    /// A flush task is writing the outbox: writers append, they do not write.
    flushing: bool,
    /// The session is writing several frames at once: they leave together.
    corked: bool,
    /// The one frame written since the cork began, held by reference (a frame that ends
    /// up alone is written without a copy).
    held: Option<(u8, Bytes)>,
    /// A close frame was queued: nothing follows it.
    closed: bool,
    /// The connection failed or was ended (or never came).
    gone: bool,
    /// A writer waits for room (so the flush task wakes it when it wrote bytes).
    writer_waiting: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        locks::lock(&self.state, "websocket outbox", &self.poisoned)
    }

    fn set_gone(&self) {
        {
            let mut state = self.state();
            state.gone = true;
            state.buf = BytesMut::new();
            state.held = None;
        }
        self.space.notify_waiters();
        self.attached.notify_waiters();
    }

    /// Writes the frame `opcode`/`payload`: straight to the socket when nothing waits
    /// before it; what the socket does not take goes to the outbox. While the writer is
    /// corked, frames are held and leave together at [`WsWriter::uncork`] (or once
    /// [`CORK_LIMIT`] bytes are held). `Ok(false)` when the outbox is full (the frame is
    /// not written; with `wait`, the flush task wakes the writer once it wrote).
    fn try_write(
        self: &Arc<Self>,
        opcode: u8,
        payload: &Bytes,
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
        state.closed = closing;
        let writable = state.stream.is_some() && !state.flushing;
        if !writable {
            // Before the handshake's response is written, or behind frames that wait.
            release_held(&mut state);
            append_frame(&mut state.buf, opcode, payload);
            return Ok(true);
        }
        if state.corked {
            if state.held.is_none() && state.buf.is_empty() {
                // One frame held by reference: alone, it still leaves without a copy.
                state.held = Some((opcode, payload.clone()));
                return Ok(true);
            }
            release_held(&mut state);
            append_frame(&mut state.buf, opcode, payload);
            if state.buf.len() >= CORK_LIMIT {
                self.write_outbox(state);
            }
            return Ok(true);
        }
        self.write_frame(state, opcode, payload)?;
        Ok(true)
    }

    /// Writes a run of text frames, in order and together: straight to the socket when
    /// nothing waits before them, otherwise after what waits (or with the cork). All or
    /// none: `Ok(false)` when the outbox is full.
    fn try_write_run(self: &Arc<Self>, payloads: &[&ByteString]) -> Result<bool, Closed> {
        let mut state = self.state();
        if state.closed || state.gone {
            return Err(Closed);
        }
        if state.buf.len() >= OUTBOX_LIMIT {
            return Ok(false);
        }
        if state.stream.is_none() || state.flushing || state.corked {
            release_held(&mut state);
            for payload in payloads {
                append_frame(&mut state.buf, OP_TEXT, payload.as_bytes());
            }
            if state.corked
                && state.stream.is_some()
                && !state.flushing
                && state.buf.len() >= CORK_LIMIT
            {
                self.write_outbox(state);
            }
            return Ok(true);
        }
        match payloads {
            [] => Ok(true),
            [one] => self
                .write_frame(state, OP_TEXT, one.as_bytes())
                .map(|()| true),
            _ => self.write_frames(state, OP_TEXT, payloads).map(|()| true),
        }
    }

    /// Writes several frames straight from their payloads, headers and payloads in
    /// `writev`s of up to [`WRITEV_FRAMES`] frames; what the socket does not take goes to
    /// the outbox, for a flush task. The outbox is empty and no flush task runs.
    fn write_frames(
        self: &Arc<Self>,
        mut state: MutexGuard<'_, State>,
        opcode: u8,
        payloads: &[&ByteString],
    ) -> Result<(), Closed> {
        let mut rest = payloads;
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(rest.len().min(WRITEV_FRAMES));
            let mut headers = [([0u8; 10], 0usize); WRITEV_FRAMES];
            for (header, payload) in headers.iter_mut().zip(chunk) {
                *header = frame_header(opcode, payload.len());
            }
            let mut slices = [IoSlice::new(&[]); 2 * WRITEV_FRAMES];
            let mut total = 0;
            for (i, ((header, len), payload)) in headers.iter().zip(chunk).enumerate() {
                slices[2 * i] = IoSlice::new(&header[..*len]);
                slices[2 * i + 1] = IoSlice::new(payload.as_bytes());
                total += len + payload.len();
            }
            let slices = &slices[..2 * chunk.len()];
            let written = try_writev(&mut state, slices)?;
            if written == total {
                rest = after;
                continue;
            }
            // The unwritten end of this chunk, then every chunk after it, wait in order.
            let mut skip = written;
            for slice in slices {
                if skip >= slice.len() {
                    skip -= slice.len();
                    continue;
                }
                state.buf.extend_from_slice(&slice[skip..]);
                skip = 0;
            }
            for payload in after {
                append_frame(&mut state.buf, opcode, payload.as_bytes());
            }
            self.start_flush(state);
            return Ok(());
        }
        Ok(())
    }

    /// Writes one frame straight from `payload` (header and payload in one `writev`);
    /// what the socket does not take goes to the outbox, for a flush task. The outbox is
    /// empty and no flush task runs.
    fn write_frame(
        self: &Arc<Self>,
        mut state: MutexGuard<'_, State>,
        opcode: u8,
        payload: &[u8],
    ) -> Result<(), Closed> {
        let (header, header_len) = frame_header(opcode, payload.len());
        let header = &header[..header_len];
        let total = header.len() + payload.len();
        let written = try_writev(&mut state, &[IoSlice::new(header), IoSlice::new(payload)])?;
        if written == total {
            return Ok(());
        }
        if written < header.len() {
            state.buf.extend_from_slice(&header[written..]);
            state.buf.extend_from_slice(payload);
        } else {
            state
                .buf
                .extend_from_slice(&payload[written - header.len()..]);
        }
        self.start_flush(state);
        Ok(())
    }

    /// Writes what the outbox holds; what the socket does not take stays for a flush
    /// task. No flush task runs.
    fn write_outbox(self: &Arc<Self>, mut state: MutexGuard<'_, State>) {
        let Some(stream) = state.stream.clone() else {
            return;
        };
        while !state.buf.is_empty() {
            match stream.try_write(&state.buf) {
                Ok(0) => {
                    state.gone = true;
                    return;
                }
                Ok(n) => {
                    let _ = state.buf.split_to(n);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    state.gone = true;
                    return;
                }
            }
        }
        if state.buf.is_empty() {
            state.buf = BytesMut::new();
            return;
        }
        drop(stream);
        self.start_flush(state);
    }

    /// Starts the flush task for what the outbox holds.
    fn start_flush(self: &Arc<Self>, mut state: MutexGuard<'_, State>) {
        let Some(stream) = state.stream.clone() else {
            return;
        };
        state.flushing = true;
        drop(state);
        tokio::spawn(flush_outbox(Arc::clone(self), stream));
    }

    /// Ends a cork: the frames it held leave now, together.
    fn uncork(self: &Arc<Self>) {
        let mut state = self.state();
        state.corked = false;
        if state.gone || state.stream.is_none() || state.flushing {
            // Written by the takeover's or the running flush task.
            release_held(&mut state);
            return;
        }
        match state.held.take() {
            Some((opcode, payload)) if state.buf.is_empty() => {
                // A failure marks the connection gone; the next write reports it.
                let _ = self.write_frame(state, opcode, &payload);
            }
            Some((opcode, payload)) => {
                append_frame(&mut state.buf, opcode, &payload);
                self.write_outbox(state);
            }
            None if !state.buf.is_empty() => self.write_outbox(state),
            None => {}
        }
    }
}

/// Offers `slices` to the socket in one `writev`, without waiting: the bytes it took (0
/// when it would block, or before the connection is attached). The stream is borrowed,
/// not cloned: a delivery costs no reference count. A failed connection is marked gone.
fn try_writev(state: &mut State, slices: &[IoSlice<'_>]) -> Result<usize, Closed> {
    let attempt = state
        .stream
        .as_ref()
        .map(|stream| stream.try_write_vectored(slices));
    match attempt {
        None => Ok(0),
        Some(Ok(n)) => Ok(n),
        Some(Err(error)) if error.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Some(Err(_)) => {
            state.gone = true;
            Err(Closed)
        }
    }
}

/// Moves a frame held by a cork into the outbox, ahead of what follows it.
fn release_held(state: &mut State) {
    if let Some((opcode, payload)) = state.held.take() {
        append_frame(&mut state.buf, opcode, &payload);
    }
}

fn append_frame(buf: &mut BytesMut, opcode: u8, payload: &[u8]) {
    let (header, header_len) = frame_header(opcode, payload.len());
    buf.extend_from_slice(&header[..header_len]);
    buf.extend_from_slice(payload);
}

/// Writes the outbox as the socket drains, then ends (and frees the outbox).
async fn flush_outbox(shared: Arc<Shared>, stream: Arc<TcpStream>) {
    loop {
        if stream.writable().await.is_err() {
            shared.set_gone();
            return;
        }
        let (drained, wake) = {
            let mut state = shared.state();
            if state.gone {
                return;
            }
            let mut failed = false;
            while !state.buf.is_empty() {
                match stream.try_write(&state.buf) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(n) => {
                        let _ = state.buf.split_to(n);
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                drop(state);
                shared.set_gone();
                return;
            }
            let drained = state.buf.is_empty();
            if drained {
                state.flushing = false;
                state.buf = BytesMut::new();
            }
            let wake = std::mem::take(&mut state.writer_waiting) || drained;
            (drained, wake)
        };
        if wake {
            shared.space.notify_waiters();
        }
        if drained {
            return;
        }
    }
}

/// A server frame's header (FIN set, unmasked): its bytes and its length.
fn frame_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut header = [0u8; 10];
    header[0] = 0x80 | opcode;
    if len < 126 {
        header[1] = len as u8;
        (header, 2)
    } else if let Ok(len) = u16::try_from(len) {
        header[1] = 126;
        header[2..4].copy_from_slice(&len.to_be_bytes());
        (header, 4)
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (header, 10)
    }
}

/// A close frame's payload: the code and as much of the reason as a control frame holds
/// (125 bytes), cut at a character boundary.
fn close_payload(reason: Option<CloseReason>) -> Vec<u8> {
    let Some(reason) = reason else {
        return Vec::new();
    };
    let mut payload = u16::from(reason.code).to_be_bytes().to_vec();
    if let Some(description) = &reason.description {
        let mut end = description.len().min(123);
        while !description.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&description.as_bytes()[..end]);
    }
    payload
}

/// The session's end of the WebSocket. Clones write to the same connection (the upgrade's
/// reader answers pings with one).
#[derive(Clone)]
pub struct WsWriter {
    handle: Arc<WriterHandle>,
}

struct WriterHandle {
    shared: Arc<Shared>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // The last writer is gone: nothing more will be written.
        self.shared.state().closed = true;
    }
}

impl WsWriter {
    /// Writes a text frame, waiting while the outbox is full.
    pub async fn text(&self, text: impl Into<ByteString>) -> Result<(), Closed> {
        self.write(OP_TEXT, text.into().into_bytes(), false).await
    }

    /// Writes a run of text frames together (one `writev` for up to 32 frames) if the
    /// outbox has room, without waiting: `Ok(false)` when it is full (none was written).
    /// For a writer other than the session ([`crate::lane`]).
    pub fn try_texts(&self, texts: &[&ByteString]) -> Result<bool, Closed> {
        self.handle.shared.try_write_run(texts)
    }

    /// Answers a ping.
    pub async fn pong(&self, bytes: &[u8]) -> Result<(), Closed> {
        self.write(OP_PONG, Bytes::copy_from_slice(bytes), false)
            .await
    }

    /// Holds the frames written from now on until [`WsWriter::uncork`], which writes them
    /// together: a session that has several frames ready writes them in one system call
    /// (or a few, of about 16 KiB each) rather than one each.
    pub fn cork(&self) {
        self.handle.shared.state().corked = true;
    }

    /// Writes what the cork held.
    pub fn uncork(&self) {
        self.handle.shared.uncork();
    }

    /// Writes the close frame and waits until the socket took it (and everything before
    /// it), so that ending the connection afterwards loses none of it.
    pub async fn close(&self, reason: Option<CloseReason>) -> Result<(), Closed> {
        self.write(OP_CLOSE, Bytes::from(close_payload(reason)), true)
            .await?;
        let shared = &self.handle.shared;
        // Nothing follows a close frame: a cork ends with it.
        shared.uncork();
        loop {
            let drained = shared.space.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let state = shared.state();
                if state.gone {
                    return Err(Closed);
                }
                if state.buf.is_empty() && state.held.is_none() && state.stream.is_some() {
                    return Ok(());
                }
                drop(state);
            }
            // Before the takeover nothing is written: wait for it too.
            let attached = shared.attached.notified();
            tokio::pin!(attached);
            attached.as_mut().enable();
            if shared.state().stream.is_some() {
                drained.await;
            } else {
                attached.await;
            }
        }
    }

    /// Ends the TCP connection (see [`super::tcp::end`]); a connection not yet handed
    /// over is dropped when it is.
    pub fn end(&self, ending: super::tcp::Ending) {
        let stream = self.handle.shared.state().stream.clone();
        if let Some(stream) = stream {
            super::tcp::end(&stream, ending);
        }
        self.handle.shared.set_gone();
    }

    async fn write(&self, opcode: u8, payload: Bytes, closing: bool) -> Result<(), Closed> {
        let shared = &self.handle.shared;
        loop {
            if shared.try_write(opcode, &payload, closing, false)? {
                return Ok(());
            }
            // Full: wait for the socket to drain. Registered before the second look, so
            // that a drain between the two still wakes this writer.
            let space = shared.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            if shared.try_write(opcode, &payload, closing, true)? {
                return Ok(());
            }
            space.await;
        }
    }
}

/// The client's frames, decoded from the stream.
pub struct WsReader {
    shared: Arc<Shared>,
    /// The connection, once attached.
    stream: Option<Arc<TcpStream>>,
    buf: BytesMut,
    codec: Codec,
    ended: bool,
}

impl WsReader {
    /// The next frame; `None` once the client or the connection is gone. Cancel-safe:
    /// bytes are buffered in the same poll that reads them.
    pub async fn recv(&mut self) -> Option<Result<Incoming, ProtocolError>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => return Some(incoming(frame)),
                Ok(None) => {}
                // The parser skips an oversized frame, so reading can go on: the peer's
                // answer to the close frame that follows is still read.
                Err(error) => return Some(Err(error)),
            }
            if self.ended {
                return None;
            }
            if self.buf.is_empty() && self.buf.capacity() > 0 {
                // An idle connection keeps no read buffer.
                self.buf = BytesMut::new();
            }
            let Some(stream) = self.stream.clone() else {
                self.wait_attached().await;
                continue;
            };
            if stream.readable().await.is_err() {
                self.ended = true;
                continue;
            }
            match read_some(&stream, &mut self.buf) {
                Ok(0) => self.ended = true,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => {
                    self.ended = true;
                    return Some(Err(ProtocolError::Io(error)));
                }
            }
        }
    }

    /// Waits for the connection (with what the client sent early); ends the reader if it
    /// never comes.
    async fn wait_attached(&mut self) {
        let attached = self.shared.attached.notified();
        tokio::pin!(attached);
        attached.as_mut().enable();
        {
            let mut state = self.shared.state();
            if let Some(stream) = &state.stream {
                self.stream = Some(Arc::clone(stream));
                if let Some(early) = state.early.take() {
                    self.buf.extend_from_slice(&early);
                }
                return;
            }
            if state.gone {
                self.ended = true;
                return;
            }
        }
        attached.await;
    }
}

/// Reads what the socket holds (at most [`READ_CHUNK`] bytes) into `buf`.
fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let mut chunk = [0u8; READ_CHUNK];
    let n = stream.try_read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
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

/// WebSockets on loopback connections, for tests of what writes to them.
#[cfg(test)]
pub mod testing {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A WebSocket whose connection is not attached yet: its writer, reader and takeover.
    pub fn unattached() -> (WsWriter, WsReader, Takeover) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            space: Notify::new(),
            attached: Notify::new(),
            poisoned: IntCounter::new("poisoned", "poisoned").unwrap(),
        });
        let reader = WsReader {
            shared: Arc::clone(&shared),
            stream: None,
            buf: BytesMut::new(),
            codec: Codec::new().max_size(1_000),
            ended: false,
        };
        let writer = WsWriter {
            handle: Arc::new(WriterHandle {
                shared: Arc::clone(&shared),
            }),
        };
        (
            writer,
            reader,
            Takeover {
                shared: Some(shared),
            },
        )
    }

    /// A client frame (masked, as clients must).
    pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    /// A connected pair on loopback: (the server's end, the client's end).
    pub async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (server, client) = tokio::join!(listener.accept(), client);
        (server.unwrap().0, client.unwrap())
    }

    /// A writer whose connection is attached, and the client's end of it.
    pub async fn attached_writer() -> (WsWriter, TcpStream) {
        let (writer, _reader, takeover) = unattached();
        let (server, client) = pair().await;
        takeover.attach(server, b"");
        (writer, client)
    }

    /// An attached writer whose socket's kernel send buffer is small (4 KiB), so that a
    /// client that reads nothing fills it, and then the outbox, after a few frames.
    pub async fn tight_writer() -> (WsWriter, TcpStream) {
        let (writer, _reader, takeover) = unattached();
        let (server, client) = pair().await;
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4_096)
            .unwrap();
        takeover.attach(server, b"");
        (writer, client)
    }

    /// Reads server frames off `client` until `count` arrived: (opcode, payload) each.
    pub async fn frames(client: &mut TcpStream, count: usize) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while out.len() < count {
            let mut head = [0u8; 2];
            client.read_exact(&mut head).await.unwrap();
            assert_eq!(head[0] & 0x80, 0x80, "FIN is set");
            assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
            let len = match head[1] & 0x7f {
                126 => client.read_u16().await.unwrap() as usize,
                127 => client.read_u64().await.unwrap() as usize,
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            client.read_exact(&mut payload).await.unwrap();
            out.push((head[0] & 0x0f, payload));
        }
        out
    }

    /// Reads `count` text frames off `client`, as text.
    pub async fn read_texts(client: &mut TcpStream, count: usize) -> Vec<String> {
        frames(client, count)
            .await
            .into_iter()
            .map(|(opcode, payload)| {
                assert_eq!(opcode, OP_TEXT);
                String::from_utf8(payload).unwrap()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{
        attached_writer, client_frame, frames, pair, read_texts, tight_writer, unattached,
    };
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn frame_headers_use_the_shortest_length_form() {
        assert_eq!(
            frame_header(OP_TEXT, 125),
            ([0x81, 125, 0, 0, 0, 0, 0, 0, 0, 0], 2)
        );
        assert_eq!(frame_header(OP_TEXT, 126).1, 4);
        assert_eq!(
            &frame_header(OP_TEXT, 65_535).0[..4],
            &[0x81, 126, 0xff, 0xff]
        );
        let (header, len) = frame_header(OP_CLOSE, 65_536);
        assert_eq!(len, 10);
        assert_eq!(&header[..10], &[0x88, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn a_close_reason_is_cut_to_what_a_control_frame_holds() {
        let long = CloseReason {
            code: CloseCode::Policy,
            description: Some("é".repeat(100)),
        };
        let payload = close_payload(Some(long));
        assert!(payload.len() <= 125, "{}", payload.len());
        assert_eq!(&payload[..2], &1008u16.to_be_bytes());
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
        assert!(close_payload(None).is_empty());
    }

    #[tokio::test]
    async fn frames_written_before_the_takeover_leave_first_in_order_then_writes_go_straight_out() {
        let (writer, _reader, takeover) = unattached();
        writer.text("0{\"sid\":\"x\"}").await.unwrap();
        writer.text("40").await.unwrap();
        let (server, mut client) = pair().await;
        takeover.attach(server, b"");
        writer.text("x".repeat(300)).await.unwrap();
        writer
            .close(Some(CloseReason {
                code: CloseCode::Away,
                description: None,
            }))
            .await
            .unwrap();
        let got = frames(&mut client, 4).await;
        assert_eq!(got[0], (OP_TEXT, b"0{\"sid\":\"x\"}".to_vec()));
        assert_eq!(got[1], (OP_TEXT, b"40".to_vec()));
        assert_eq!(got[2], (OP_TEXT, vec![b'x'; 300]));
        assert_eq!(got[3], (OP_CLOSE, 1001u16.to_be_bytes().to_vec()));
        assert_eq!(
            writer.text("late").await,
            Err(Closed),
            "nothing follows a close"
        );
    }

    /// Runs of frames written together leave in order, whole, including runs longer
    /// than one `writev` and runs the kernel takes only part of (the rest waits in the
    /// outbox); once the outbox is full a run is refused whole, and written after the
    /// client read.
    #[tokio::test]
    async fn runs_of_frames_leave_whole_and_in_order_and_a_full_outbox_refuses_a_run() {
        let (writer, mut client) = tight_writer().await;
        // Sizes that take each header form, in runs of 1 to 70 frames (over two writevs).
        let text = |n: usize| ByteString::from(format!("{n:06}{}", "x".repeat(n % 300)));
        let mut sent = Vec::new();
        let mut refused = None;
        'write: for len in 1..=70usize {
            let run: Vec<ByteString> = (sent.len()..sent.len() + len).map(text).collect();
            let refs: Vec<&ByteString> = run.iter().collect();
            match writer.try_texts(&refs) {
                Ok(true) => sent.extend(run),
                Ok(false) => {
                    refused = Some(run);
                    break 'write;
                }
                Err(Closed) => panic!("the connection is open"),
            }
        }
        let refused = refused.expect("the client reads nothing: the outbox fills");
        assert!(
            writer.handle.shared.state().buf.len() >= OUTBOX_LIMIT,
            "refused only once the outbox is full"
        );
        let got = tokio::time::timeout(Duration::from_secs(10), frames(&mut client, sent.len()))
            .await
            .expect("every frame written arrives");
        let got: Vec<String> = got
            .into_iter()
            .map(|(opcode, payload)| {
                assert_eq!(opcode, OP_TEXT);
                String::from_utf8(payload).unwrap()
            })
            .collect();
        let sent: Vec<String> = sent.iter().map(ToString::to_string).collect();
        assert_eq!(got, sent, "every frame once, in order");
        // The outbox drained: the refused run goes out now.
        let refs: Vec<&ByteString> = refused.iter().collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !matches!(writer.try_texts(&refs), Ok(true)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the outbox never drained"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let refused: Vec<String> = refused.iter().map(ToString::to_string).collect();
        let late = tokio::time::timeout(
            Duration::from_secs(10),
            read_texts(&mut client, refused.len()),
        )
        .await
        .expect("the refused run arrives once written");
        assert_eq!(late, refused);
    }

    #[tokio::test]
    async fn a_full_outbox_holds_the_writer_until_the_client_reads() {
        let (writer, mut client) = tight_writer().await;
        let frame = "y".repeat(8 * 1024);
        // The client reads nothing: the kernel's buffers fill, then the outbox.
        let mut written = 0;
        while let Ok(result) =
            tokio::time::timeout(Duration::from_millis(200), writer.text(frame.clone())).await
        {
            result.unwrap();
            written += 1;
            assert!(written < 10_000, "the writer was never held");
        }
        let waiting = {
            let writer = writer.clone();
            tokio::spawn(async move { writer.text("z").await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "a write into a full outbox must wait"
        );
        let got = tokio::spawn(async move { frames(&mut client, written + 1).await });
        let result = tokio::time::timeout(Duration::from_secs(10), waiting).await;
        assert_eq!(result.unwrap().unwrap(), Ok(()));
        let got = tokio::time::timeout(Duration::from_secs(10), got)
            .await
            .unwrap()
            .unwrap();
        assert!(got[..written]
            .iter()
            .all(|(op, p)| *op == OP_TEXT && p.len() == 8 * 1024));
        assert_eq!(
            got[written],
            (OP_TEXT, b"z".to_vec()),
            "in order, none lost"
        );
    }

    #[tokio::test]
    async fn the_reader_decodes_what_came_with_the_handshake_and_what_follows() {
        let (_writer, mut reader, takeover) = unattached();
        let (server, mut client) = pair().await;
        let early = client_frame(OP_TEXT, b"2probe");
        takeover.attach(server, &early);
        client.write_all(&client_frame(0x9, b"p")).await.unwrap();
        client
            .write_all(&client_frame(OP_TEXT, b"5"))
            .await
            .unwrap();
        client
            .write_all(&client_frame(OP_CLOSE, &[0x03, 0xe8]))
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(format!("{:?}", reader.recv().await.unwrap().unwrap()));
        }
        assert_eq!(
            got,
            ["Text(\"2probe\")", "Ping(b\"p\")", "Text(\"5\")", "Close"]
        );
        drop(client);
        assert!(
            reader.recv().await.is_none(),
            "the reader ends with the connection"
        );
    }

    #[tokio::test]
    async fn without_a_connection_writes_fail_and_the_reader_ends() {
        let (writer, mut reader, takeover) = unattached();
        writer.text("queued").await.unwrap();
        drop(takeover);
        assert_eq!(writer.text("to nobody").await, Err(Closed));
        let ended = tokio::time::timeout(Duration::from_secs(5), reader.recv()).await;
        assert!(matches!(ended, Ok(None)), "the reader ends");
    }

    #[tokio::test]
    async fn ending_the_connection_ends_the_client_s_stream_and_later_writes_fail() {
        let (writer, mut client) = attached_writer().await;
        writer.text("bye").await.unwrap();
        writer.end(super::super::tcp::Ending::Graceful);
        let got = frames(&mut client, 1).await;
        assert_eq!(got[0], (OP_TEXT, b"bye".to_vec()));
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(0))),
            "FIN after what was sent: {read:?}"
        );
        assert_eq!(writer.text("late").await, Err(Closed));
    }

    #[tokio::test]
    async fn corked_frames_leave_together_at_uncork_in_order() {
        let (writer, mut client) = attached_writer().await;
        writer.cork();
        for text in ["a", "bb", "ccc"] {
            writer.text(text).await.unwrap();
        }
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(100), client.read(&mut byte)).await;
        assert!(early.is_err(), "nothing leaves while corked");
        writer.uncork();
        let got = frames(&mut client, 3).await;
        assert_eq!(
            got,
            [
                (OP_TEXT, b"a".to_vec()),
                (OP_TEXT, b"bb".to_vec()),
                (OP_TEXT, b"ccc".to_vec())
            ]
        );
        // Uncorked again: a frame leaves at once.
        writer.text("d").await.unwrap();
        assert_eq!(frames(&mut client, 1).await, [(OP_TEXT, b"d".to_vec())]);
    }

    #[tokio::test]
    async fn a_cork_writes_once_it_holds_16_kib_and_a_close_ends_it() {
        let (writer, mut client) = attached_writer().await;
        writer.cork();
        let frame = "e".repeat(1_000);
        for _ in 0..20 {
            writer.text(frame.clone()).await.unwrap();
        }
        // More than 16 KiB were held: the first of them are written without an uncork.
        let first = tokio::time::timeout(Duration::from_secs(5), frames(&mut client, 16)).await;
        assert!(first.is_ok(), "a full cork writes");
        writer.close(None).await.unwrap();
        let rest = frames(&mut client, 5).await;
        assert!(rest[..4]
            .iter()
            .all(|(op, p)| *op == OP_TEXT && p.len() == 1_000));
        assert_eq!(rest[4], (OP_CLOSE, Vec::new()), "the close is not held");
    }
}
