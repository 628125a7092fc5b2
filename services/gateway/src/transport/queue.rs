//! What other tasks hand to a session: its queue's items and its out-of-band signals.

use super::cause::Cause;
use super::ws::WsWriter;
use crate::protocol::engineio::EioPacket;
use bytestring::ByteString;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// A session's number on this replica (room membership is keyed by it).
pub type SessionId = u64;

/// What other tasks hand to a session. `M` is the application's own message type (a
/// board event for the board application).
pub enum ToSession<M> {
    /// A message for the application (e.g. an event of one of the socket's rooms).
    App(M),
    /// An encoded Socket.IO packet to send as an Engine.IO message (e.g. a command's ack).
    Packet(String),
    /// An encoded Engine.IO frame shared by many sockets (presence).
    Frame(ByteString),
    /// Packets a polling POST carried.
    Inbound(Vec<EioPacket>),
    /// A WebSocket probe for this session arrived: release the pending long-poll.
    Probing,
    /// The upgrade completed: write to this WebSocket from now on. (Its frames are read by
    /// the upgrade's own task on the worker that accepted it and arrive as `Inbound`.)
    /// (Boxed: it happens once per session, and every queue slot is as large as the
    /// largest item.)
    Upgrade(Box<WsWriter>),
    /// The transport failed or broke a rule (e.g. two concurrent long-polls).
    Close(Cause),
}

/// Out-of-band signals to a session that must not wait behind its full queue.
#[derive(Debug, Default)]
pub struct Signals {
    slow: AtomicBool,
    pub notify: Notify,
}

impl Signals {
    pub fn mark_slow(&self) {
        if !self.slow.swap(true, Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    pub fn is_slow(&self) -> bool {
        self.slow.load(Ordering::SeqCst)
    }
}
