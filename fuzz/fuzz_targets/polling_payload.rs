//! Long-polling bodies: any text splits into packets or an error, never a panic; what it
//! splits into joins back into a body that splits the same way.
#![no_main]

use gateway::protocol::engineio::{decode_payload, encode_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &str| {
    if let Ok(packets) = decode_payload(body) {
        let texts: Vec<String> = packets.iter().map(|p| p.encode()).collect();
        let again = decode_payload(&encode_payload(&texts));
        assert_eq!(again.ok(), Some(packets), "round trip of {body:?}");
    }
});
