//! The payloads of client commands, as the gateway parses them: any JSON (or not-JSON)
//! text is a typed command or an error, never a panic.
#![no_main]

use kanban_protocol::socket::{
    CreateTicketCommand, DeleteTicketCommand, HintCommand, JoinArg, LeaveArg, MoveTicketCommand,
    UpdateTicketCommand,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let _ = serde_json::from_value::<JoinArg>(value.clone());
    let _ = serde_json::from_value::<LeaveArg>(value.clone());
    let _ = serde_json::from_value::<CreateTicketCommand>(value.clone());
    let _ = serde_json::from_value::<UpdateTicketCommand>(value.clone());
    let _ = serde_json::from_value::<MoveTicketCommand>(value.clone());
    let _ = serde_json::from_value::<DeleteTicketCommand>(value.clone());
    let _ = serde_json::from_value::<HintCommand>(value);
});
