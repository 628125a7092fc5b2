//! The wire protocols the gateway speaks: Engine.IO v4 packets and payloads, and the
//! Socket.IO v5 packets they carry. Pure encoding and decoding; no I/O.

pub mod engineio;
pub mod socketio;
