//! HTTP long-polling: the buffer a polling session writes to, the registry of polling
//! sessions on this replica, and the GET/POST exchanges of the transport.
//!
//! A polling session lives on the replica that created it: a load balancer must send a
//! client's polling requests to one replica (affinity), or the client must use the
//! WebSocket transport only (see docs/PROTOCOL.md).

use super::cause::Cause;
use super::queue::ToSession;
use crate::locks;
use crate::protocol::engineio::{decode_payload, encode_payload};
use bytestring::ByteString;
use prometheus::{IntCounter, IntGauge};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// Frames waiting for the next long-poll GET.
pub struct PollBuffer {
    frames: Mutex<Vec<ByteString>>,
    notify: Notify,
    /// Told when a GET took the frames, so a writer waiting for room can go on.
    drained: Notify,
    closed: AtomicBool,
    /// How a GET learns of the end: with a noop (the client closed, or the session moved
    /// to a WebSocket) rather than the close packet.
    quiet: AtomicBool,
    /// The session moved to a WebSocket: polling requests with its sid are refused.
    upgraded: AtomicBool,
    get_busy: AtomicBool,
    post_busy: AtomicBool,
    limit: usize,
    /// Counts a poisoned `frames` lock ([`crate::locks`]).
    poisoned: IntCounter,
}

pub struct Full;

impl PollBuffer {
    pub fn new(limit: usize, poisoned: IntCounter) -> Self {
        PollBuffer {
            poisoned,
            frames: Mutex::new(Vec::new()),
            notify: Notify::new(),
            drained: Notify::new(),
            closed: AtomicBool::new(false),
            quiet: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            get_busy: AtomicBool::new(false),
            post_busy: AtomicBool::new(false),
            limit: limit.max(1),
        }
    }

    /// Adds a frame for the next GET. A full buffer is waited on (for the client's next
    /// GET) for up to `timeout`, as a WebSocket write waits for the client to read.
    pub async fn push_within(&self, frame: ByteString, timeout: Duration) -> Result<(), Full> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a GET between the two is not missed.
            drained.as_mut().enable();
            {
                let mut frames = self.frames();
                // A closed buffer still takes frames while there is room: between the
                // client's upgrade (`5`, which closes it) and the session's switch to the
                // WebSocket, what is written here is carried over to the WebSocket.
                if frames.len() < self.limit {
                    frames.push(frame);
                    drop(frames);
                    self.notify.notify_one();
                    return Ok(());
                }
            }
            // Full and closed: no GET will make room.
            if self.closed.load(Ordering::SeqCst) {
                return Err(Full);
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return Err(Full);
            }
        }
    }

    fn frames(&self) -> MutexGuard<'_, Vec<ByteString>> {
        locks::lock(&self.frames, "polling buffer", &self.poisoned)
    }

    /// Control packets (noop) go in regardless of the limit.
    pub fn push_control(&self, frame: ByteString) {
        self.frames().push(frame);
        self.notify.notify_one();
    }

    /// The session moved to a WebSocket.
    pub fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::SeqCst)
    }

    pub fn take(&self) -> Vec<ByteString> {
        let frames = std::mem::take(&mut *self.frames());
        if !frames.is_empty() {
            self.drained.notify_waiters();
        }
        frames
    }

    /// The session ended: a pending or later GET gets the close packet.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// The client closed: a pending or later GET gets a noop.
    pub fn close_quietly(&self) {
        self.quiet.store(true, Ordering::SeqCst);
        self.close();
    }

    /// The client completed the upgrade (`5`): from now on polling requests are refused
    /// and a pending GET ends with a noop. Marked when the `5` arrives, before the session
    /// task switches writers, so a GET racing the switch is already refused.
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::SeqCst);
        self.close_quietly();
    }

    /// Waits for frames and returns the response body of one long-poll GET.
    pub async fn long_poll(&self, max_wait: Duration) -> String {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let notified = self.notify.notified();
            let frames = self.take();
            if !frames.is_empty() {
                return encode_payload(&frames);
            }
            if self.closed.load(Ordering::SeqCst) {
                return if self.quiet.load(Ordering::SeqCst) {
                    "6".to_owned()
                } else {
                    "1".to_owned()
                };
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return "6".to_owned();
            }
        }
    }
}

/// The handle the HTTP handlers use to reach a polling session.
pub struct PollHandle<M> {
    pub tx: mpsc::Sender<ToSession<M>>,
    pub buffer: std::sync::Arc<PollBuffer>,
}

impl<M> Clone for PollHandle<M> {
    fn clone(&self) -> Self {
        PollHandle {
            tx: self.tx.clone(),
            buffer: std::sync::Arc::clone(&self.buffer),
        }
    }
}

/// Polling sessions of this replica, by Engine.IO sid.
pub struct PollingRegistry<M> {
    sessions: Mutex<HashMap<String, PollHandle<M>>>,
    /// Counts a poisoned `sessions` lock ([`crate::locks`]).
    poisoned: IntCounter,
}

/// Why a polling request was refused: Engine.IO's `{"code", "message"}` errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollError {
    TransportUnknown,
    SessionUnknown,
    BadHandshakeMethod,
    BadRequest,
    Forbidden,
    UnsupportedProtocolVersion,
    PayloadTooLarge,
    Unavailable,
}

impl PollError {
    pub fn code(self) -> u16 {
        match self {
            PollError::TransportUnknown => 0,
            PollError::SessionUnknown => 1,
            PollError::BadHandshakeMethod => 2,
            PollError::BadRequest | PollError::PayloadTooLarge | PollError::Unavailable => 3,
            PollError::Forbidden => 4,
            PollError::UnsupportedProtocolVersion => 5,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            PollError::TransportUnknown => "Transport unknown",
            PollError::SessionUnknown => "Session ID unknown",
            PollError::BadHandshakeMethod => "Bad handshake method",
            PollError::BadRequest => "Bad request",
            PollError::Forbidden => "Forbidden",
            PollError::UnsupportedProtocolVersion => "Unsupported protocol version",
            PollError::PayloadTooLarge => "Payload too large",
            PollError::Unavailable => "Server unavailable",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            PollError::Forbidden => 403,
            PollError::PayloadTooLarge => 413,
            PollError::Unavailable => 503,
            _ => 400,
        }
    }
}

impl<M> PollingRegistry<M> {
    pub fn new(poisoned: IntCounter) -> Self {
        PollingRegistry {
            sessions: Mutex::new(HashMap::new()),
            poisoned,
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, PollHandle<M>>> {
        locks::lock(&self.sessions, "polling sessions", &self.poisoned)
    }

    pub fn insert(&self, sid: &str, handle: PollHandle<M>) {
        self.sessions().insert(sid.to_owned(), handle);
    }

    pub fn get(&self, sid: &str) -> Option<PollHandle<M>> {
        self.sessions().get(sid).cloned()
    }

    pub fn remove(&self, sid: &str) {
        self.sessions().remove(sid);
    }

    /// One long-poll GET. Only one may be in flight per session: a second one is refused
    /// and closes the session. `waiting` counts the GETs held open.
    pub async fn get_request(
        &self,
        sid: &str,
        max_wait: Duration,
        waiting: &IntGauge,
    ) -> Result<String, PollError> {
        let handle = self
            .get(sid)
            .filter(|h| !h.buffer.is_upgraded())
            .ok_or(PollError::SessionUnknown)?;
        let Some(_slot) = Busy::take(&handle.buffer.get_busy, Some(waiting)) else {
            let _ = handle.tx.try_send(ToSession::Close(Cause::ProtocolError(
                "overlapping long-polls".into(),
            )));
            return Err(PollError::BadRequest);
        };
        let body = handle.buffer.long_poll(max_wait).await;
        if handle.buffer.closed.load(Ordering::SeqCst) {
            // The session's last word was this response; the sid is unknown from now on.
            self.remove(sid);
        }
        Ok(body)
    }

    /// One POST carrying packets. Oversize bodies get 413 and close the session.
    pub async fn post_request(
        &self,
        sid: &str,
        body: &[u8],
        max_payload: usize,
    ) -> Result<(), PollError> {
        let handle = self
            .get(sid)
            .filter(|h| !h.buffer.is_upgraded() && !h.buffer.closed.load(Ordering::SeqCst))
            .ok_or(PollError::SessionUnknown)?;
        if body.len() > max_payload {
            let _ = handle.tx.try_send(ToSession::Close(Cause::TooBig));
            return Err(PollError::PayloadTooLarge);
        }
        let Some(_slot) = Busy::take(&handle.buffer.post_busy, None) else {
            let _ = handle.tx.try_send(ToSession::Close(Cause::ProtocolError(
                "overlapping posts".into(),
            )));
            return Err(PollError::BadRequest);
        };
        let result = match std::str::from_utf8(body).ok().map(decode_payload) {
            Some(Ok(packets)) => handle
                .tx
                .send(ToSession::Inbound(packets))
                .await
                .map_err(|_| PollError::SessionUnknown),
            _ => {
                let _ = handle.tx.try_send(ToSession::Close(Cause::ProtocolError(
                    "bad polling payload".into(),
                )));
                Err(PollError::BadRequest)
            }
        };
        result
    }
}

/// A session's GET or POST slot, taken for one request and given back when the request
/// ends however it ends: answered, or dropped mid-await because the client went away. (A
/// flag reset after the await stayed set when the future was dropped, and the client's
/// next request was refused as overlapping, closing its session.)
struct Busy<'a> {
    flag: &'a AtomicBool,
    waiting: Option<&'a IntGauge>,
}

impl<'a> Busy<'a> {
    fn take(flag: &'a AtomicBool, waiting: Option<&'a IntGauge>) -> Option<Busy<'a>> {
        if flag.swap(true, Ordering::SeqCst) {
            return None;
        }
        if let Some(waiting) = waiting {
            waiting.inc();
        }
        Some(Busy { flag, waiting })
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.flag.store(false, Ordering::SeqCst);
        if let Some(waiting) = self.waiting {
            waiting.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn poisoned() -> IntCounter {
        IntCounter::new("poisoned_locks_total", "test").unwrap()
    }

    fn registry_with(sid: &str) -> (PollingRegistry<()>, mpsc::Receiver<ToSession<()>>) {
        let (tx, rx) = mpsc::channel(8);
        let registry = PollingRegistry::new(poisoned());
        let buffer = Arc::new(PollBuffer::new(16, poisoned()));
        registry.insert(sid, PollHandle { tx, buffer });
        (registry, rx)
    }

    /// A GET whose future is dropped mid-wait (its request cancelled: a timeout around it,
    /// a server stopping) frees the session's GET slot; the next GET is served, not
    /// refused as overlapping, and the session is not closed.
    #[tokio::test]
    async fn a_dropped_long_poll_frees_the_slot_for_the_next_one() {
        let (registry, mut rx) = registry_with("s1");
        let waiting = IntGauge::new("waiting", "test").unwrap();
        let dropped = tokio::time::timeout(
            Duration::from_millis(20),
            registry.get_request("s1", Duration::from_secs(60), &waiting),
        )
        .await;
        assert!(
            dropped.is_err(),
            "the first GET was still waiting when dropped"
        );
        assert_eq!(waiting.get(), 0);
        let next = registry
            .get_request("s1", Duration::from_millis(10), &waiting)
            .await;
        assert_eq!(next, Ok("6".to_owned()), "an idle GET ends with a noop");
        assert!(rx.try_recv().is_err(), "nothing asked the session to close");
    }

    /// A replay longer than the buffer goes at the pace of the client's GETs instead of
    /// failing as a slow consumer once the buffer is full.
    #[tokio::test]
    async fn a_writer_waits_for_a_get_to_make_room_and_gives_up_after_its_timeout() {
        let buffer = Arc::new(PollBuffer::new(2, poisoned()));
        for frame in ["a", "b"] {
            buffer
                .push_within(ByteString::from(frame), Duration::ZERO)
                .await
                .ok()
                .expect("room");
        }
        let writer = tokio::spawn({
            let buffer = Arc::clone(&buffer);
            async move {
                buffer
                    .push_within(ByteString::from("c"), Duration::from_secs(30))
                    .await
                    .is_ok()
            }
        });
        assert_eq!(buffer.long_poll(Duration::from_secs(5)).await, "a\u{1e}b");
        assert!(
            writer.await.unwrap(),
            "the waiting frame went in after the GET"
        );
        assert_eq!(buffer.take(), vec![ByteString::from("c")]);

        buffer
            .push_within(ByteString::from("d"), Duration::ZERO)
            .await
            .ok()
            .expect("room");
        buffer
            .push_within(ByteString::from("e"), Duration::ZERO)
            .await
            .ok()
            .expect("room");
        assert!(
            buffer
                .push_within(ByteString::from("f"), Duration::from_millis(20))
                .await
                .is_err(),
            "nobody took the frames: the client cannot keep up"
        );
        // Closed (the client upgraded): frames still go in while there is room, to be
        // carried over to the WebSocket; a full closed buffer refuses at once.
        buffer.close();
        assert_eq!(buffer.take().len(), 2);
        buffer
            .push_within(ByteString::from("g"), Duration::ZERO)
            .await
            .ok()
            .expect("room after the upgrade");
        buffer
            .push_within(ByteString::from("h"), Duration::ZERO)
            .await
            .ok()
            .expect("room after the upgrade");
        assert!(
            buffer
                .push_within(ByteString::from("i"), Duration::from_secs(30))
                .await
                .is_err(),
            "a full closed buffer refuses at once"
        );
    }

    #[tokio::test]
    async fn overlapping_long_polls_are_refused_and_close_the_session() {
        let (registry, mut rx) = registry_with("s1");
        let registry = Arc::new(registry);
        let waiting = IntGauge::new("waiting", "test").unwrap();
        let first = tokio::spawn({
            let (registry, waiting) = (Arc::clone(&registry), waiting.clone());
            async move {
                registry
                    .get_request("s1", Duration::from_secs(5), &waiting)
                    .await
            }
        });
        while waiting.get() == 0 {
            tokio::task::yield_now().await;
        }
        let second = registry
            .get_request("s1", Duration::from_secs(5), &waiting)
            .await;
        assert_eq!(second, Err(PollError::BadRequest));
        assert!(matches!(
            rx.try_recv(),
            Ok(ToSession::Close(Cause::ProtocolError(_)))
        ));
        first.abort();
    }
}
