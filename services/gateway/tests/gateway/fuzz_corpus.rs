//! The fuzz targets' properties (`fuzz/fuzz_targets/`), checked on every input kept in
//! their seed corpus and on every crash a fuzz run ever found (`fuzz/artifacts/`), so that
//! what a fuzzer found once stays fixed without nightly Rust or libFuzzer.

use gateway::protocol::engineio::{decode_payload, encode_payload, EioPacket};
use gateway::protocol::socketio::SioPacket;
use kanban_protocol::socket::{
    CreateTicketCommand, DeleteTicketCommand, HintCommand, JoinArg, LeaveArg, MoveTicketCommand,
    UpdateTicketCommand,
};
use std::path::Path;

/// Every kept input of `target` (corpus and artifacts), as text; libFuzzer's `&str`
/// targets skip inputs that are not UTF-8, and so does this.
fn inputs(target: &str) -> Vec<(String, String)> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz"));
    let mut out = Vec::new();
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            if let Ok(text) = String::from_utf8(bytes) {
                out.push((entry.path().display().to_string(), text));
            }
        }
    }
    out
}

#[test]
fn engine_io_packets_decode_or_refuse_and_round_trip() {
    let inputs = inputs("engineio_packet");
    assert!(!inputs.is_empty(), "the seed corpus is there");
    for (name, text) in inputs {
        if let Ok(packet) = EioPacket::decode(&text) {
            assert_eq!(
                EioPacket::decode(&packet.encode()).ok(),
                Some(packet),
                "{name}"
            );
        }
    }
}

#[test]
fn polling_payloads_split_or_refuse_and_round_trip() {
    let inputs = inputs("polling_payload");
    assert!(!inputs.is_empty(), "the seed corpus is there");
    for (name, body) in inputs {
        if let Ok(packets) = decode_payload(&body) {
            let texts: Vec<String> = packets.iter().map(|p| p.encode()).collect();
            assert_eq!(
                decode_payload(&encode_payload(&texts)).ok(),
                Some(packets),
                "{name}"
            );
        }
    }
}

#[test]
fn socket_io_packets_decode_or_refuse_and_round_trip() {
    let inputs = inputs("socketio_packet");
    assert!(!inputs.is_empty(), "the seed corpus is there");
    for (name, text) in inputs {
        if let Ok(packet) = SioPacket::decode(&text) {
            assert_eq!(
                SioPacket::decode(&packet.encode()).ok(),
                Some(packet),
                "{name}"
            );
        }
    }
}

#[test]
fn command_payloads_parse_or_refuse() {
    let inputs = inputs("command_payloads");
    assert!(!inputs.is_empty(), "the seed corpus is there");
    for (_, text) in inputs {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let _ = serde_json::from_value::<JoinArg>(value.clone());
        let _ = serde_json::from_value::<LeaveArg>(value.clone());
        let _ = serde_json::from_value::<CreateTicketCommand>(value.clone());
        let _ = serde_json::from_value::<UpdateTicketCommand>(value.clone());
        let _ = serde_json::from_value::<MoveTicketCommand>(value.clone());
        let _ = serde_json::from_value::<DeleteTicketCommand>(value.clone());
        let _ = serde_json::from_value::<HintCommand>(value);
    }
}
