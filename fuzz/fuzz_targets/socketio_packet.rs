//! Socket.IO packets (the data of an Engine.IO message): any text decodes to a packet or
//! an error, never a panic; a decoded packet encodes back to text that decodes to the same
//! packet.
#![no_main]

use gateway::protocol::socketio::SioPacket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(packet) = SioPacket::decode(text) {
        let again = SioPacket::decode(&packet.encode());
        assert_eq!(again.ok(), Some(packet), "round trip of {text:?}");
    }
});
