//! The Kanban gateway.

pub mod protocol;
