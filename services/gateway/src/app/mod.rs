//! The Socket.IO applications the transport carries: the Kanban board protocol
//! ([`board`]) or the conformance suite's echo handlers ([`echo`]).

pub mod board;
pub mod echo;
