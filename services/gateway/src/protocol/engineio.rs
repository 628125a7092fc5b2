//! Engine.IO v4 packets (text only) and the long-polling payload that carries several of them.
//!
//! Decoding follows engine.io-parser 5.2.x: the first character is the packet type, the rest
//! is the data. Binary (raw frames, or `b<base64>` packets in polling payloads) is declined by
//! this gateway, so it decodes to [`EioError::BinaryNotSupported`] and the session closes.

use std::fmt::Write as _;

use serde_json::Value;

/// One Engine.IO packet (text only; binary is declined by this gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket {
    /// `0` + the JSON handshake (server → client).
    Open(String),
    /// `1`: sent over polling to close the session.
    Close,
    /// `2`, or `2probe` while upgrading. The data after the digit, `None` when there is none.
    Ping(Option<String>),
    /// `3`, or `3probe` while upgrading. The data after the digit, `None` when there is none.
    Pong(Option<String>),
    /// `4` + text: one Socket.IO packet.
    Message(String),
    /// `5`: the client completes the upgrade to WebSocket.
    Upgrade,
    /// `6`: ends a pending polling GET without data.
    Noop,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EioError {
    /// An empty frame, body, or an empty packet inside a polling payload (`4a\x1e`).
    #[error("empty packet")]
    Empty,
    /// The first character is not a packet type (`abc`, `7`, `9`).
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// A `b<base64>` binary packet: declined by this gateway.
    #[error("binary packets are not supported")]
    BinaryNotSupported,
}

impl EioPacket {
    /// Parses one packet: a WebSocket text frame, or one record of a polling payload.
    ///
    /// Data after `close`, `upgrade` and `noop` is ignored rather than refused: engine.io-parser
    /// keeps it and the Node server never looks at it, so a client that sends it works there
    /// and must work here too. Ping and pong data is kept because `probe` matters during the
    /// upgrade.
    pub fn decode(text: &str) -> Result<EioPacket, EioError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(EioError::Empty)?;
        let data = chars.as_str();
        let optional = || (!data.is_empty()).then(|| data.to_owned());
        match kind {
            '0' => Ok(EioPacket::Open(data.to_owned())),
            '1' => Ok(EioPacket::Close),
            '2' => Ok(EioPacket::Ping(optional())),
            '3' => Ok(EioPacket::Pong(optional())),
            '4' => Ok(EioPacket::Message(data.to_owned())),
            '5' => Ok(EioPacket::Upgrade),
            '6' => Ok(EioPacket::Noop),
            'b' => Err(EioError::BinaryNotSupported),
            other => Err(EioError::UnknownType(other)),
        }
    }

    /// The packet's text form. `Ping(Some(""))` encodes like `Ping(None)` (there is no way to
    /// tell them apart on the wire), and so decodes back as `Ping(None)`.
    pub fn encode(&self) -> String {
        let (kind, data) = match self {
            EioPacket::Open(data) => ('0', data.as_str()),
            EioPacket::Close => ('1', ""),
            EioPacket::Ping(data) => ('2', data.as_deref().unwrap_or_default()),
            EioPacket::Pong(data) => ('3', data.as_deref().unwrap_or_default()),
            EioPacket::Message(data) => ('4', data.as_str()),
            EioPacket::Upgrade => ('5', ""),
            EioPacket::Noop => ('6', ""),
        };
        let mut out = String::with_capacity(1 + data.len());
        out.push(kind);
        out.push_str(data);
        out
    }
}

/// The handshake sent in the `open` packet: exactly the five keys sid, upgrades, pingInterval,
/// pingTimeout, maxPayload (the conformance suites refuse any other key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake<'a> {
    pub sid: &'a str,
    /// `["websocket"]` on a polling session, `[]` on a WebSocket one.
    pub upgrades: &'a [&'a str],
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    /// The largest polling body or WebSocket message the server accepts; the client uses it
    /// to batch polling POSTs.
    pub max_payload: u64,
}

impl Handshake<'_> {
    /// The encoded `open` packet:
    /// `0{"sid":…,"upgrades":[…],"pingInterval":…,"pingTimeout":…,"maxPayload":…}`.
    ///
    /// Written by hand rather than through a `serde_json::Map` so the keys come out in Node's
    /// order (the map would sort them), which keeps wire snapshots comparable with Node's.
    pub fn packet(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("0{\"sid\":");
        push_json_str(&mut out, self.sid);
        out.push_str(",\"upgrades\":[");
        for (i, upgrade) in self.upgrades.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(&mut out, upgrade);
        }
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "],\"pingInterval\":{},\"pingTimeout\":{},\"maxPayload\":{}}}",
            self.ping_interval_ms, self.ping_timeout_ms, self.max_payload
        );
        out
    }
}

/// Appends `text` as a JSON string literal, escaped by serde_json.
fn push_json_str(out: &mut String, text: &str) {
    // Writing to a String cannot fail, and a JSON string always displays.
    let _ = write!(out, "{}", Value::from(text));
}

/// Separates packets in a polling payload (ASCII record separator).
pub const RECORD_SEPARATOR: char = '\u{1e}';

/// Splits a polling POST body into packets. An empty body, an empty record (`4a\x1e`), a
/// `b<base64>` binary packet or any other bad packet is an error: the session must close.
/// The first error wins, as in engine.io-parser, which stops at the first bad record.
pub fn decode_payload(body: &str) -> Result<Vec<EioPacket>, EioError> {
    body.split(RECORD_SEPARATOR)
        .map(EioPacket::decode)
        .collect()
}

/// Joins already-encoded packets with the record separator for a polling GET response.
pub fn encode_payload<S: AsRef<str>>(packets: &[S]) -> String {
    let len = packets.iter().map(|p| p.as_ref().len() + 1).sum();
    let mut out = String::with_capacity(len);
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        out.push_str(packet.as_ref());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_packet_type_round_trips() {
        let packets = [
            EioPacket::Open("{}".into()),
            EioPacket::Close,
            EioPacket::Ping(None),
            EioPacket::Ping(Some("probe".into())),
            EioPacket::Pong(None),
            EioPacket::Pong(Some("probe".into())),
            EioPacket::Message("2[\"a\"]".into()),
            EioPacket::Message(String::new()),
            EioPacket::Upgrade,
            EioPacket::Noop,
        ];
        for packet in packets {
            assert_eq!(EioPacket::decode(&packet.encode()), Ok(packet));
        }
    }

    #[test]
    fn the_protocol_examples_decode() {
        let cases = [
            ("1", EioPacket::Close),
            ("2", EioPacket::Ping(None)),
            ("2probe", EioPacket::Ping(Some("probe".into()))),
            ("3", EioPacket::Pong(None)),
            ("3probe", EioPacket::Pong(Some("probe".into()))),
            ("5", EioPacket::Upgrade),
            ("6", EioPacket::Noop),
        ];
        for (text, packet) in cases {
            assert_eq!(EioPacket::decode(text), Ok(packet.clone()), "{text}");
            assert_eq!(packet.encode(), text);
        }
    }

    #[test]
    fn a_message_carries_the_socketio_text_without_the_4() {
        assert_eq!(
            EioPacket::decode("42[\"a\"]"),
            Ok(EioPacket::Message("2[\"a\"]".into()))
        );
        assert_eq!(EioPacket::decode("40"), Ok(EioPacket::Message("0".into())));
        assert_eq!(
            EioPacket::decode(r#"4212["project:join",{"projectId":"p1"}]"#),
            Ok(EioPacket::Message(
                r#"212["project:join",{"projectId":"p1"}]"#.into()
            ))
        );
        assert_eq!(
            EioPacket::Message("3/admin,13[]".into()).encode(),
            "43/admin,13[]"
        );
    }

    #[test]
    fn data_after_close_upgrade_and_noop_is_ignored_like_node() {
        assert_eq!(EioPacket::decode("1bye"), Ok(EioPacket::Close));
        assert_eq!(EioPacket::decode("5probe"), Ok(EioPacket::Upgrade));
        assert_eq!(EioPacket::decode("6x"), Ok(EioPacket::Noop));
    }

    #[test]
    fn unknown_types_and_empty_text_are_errors() {
        assert_eq!(EioPacket::decode(""), Err(EioError::Empty));
        assert_eq!(EioPacket::decode("abc"), Err(EioError::UnknownType('a')));
        assert_eq!(EioPacket::decode("7"), Err(EioError::UnknownType('7')));
        assert_eq!(EioPacket::decode("9x"), Err(EioError::UnknownType('9')));
        assert_eq!(EioPacket::decode("é4"), Err(EioError::UnknownType('é')));
        assert_eq!(EioPacket::decode(" 4"), Err(EioError::UnknownType(' ')));
    }

    #[test]
    fn base64_binary_packets_are_declined() {
        assert_eq!(
            EioPacket::decode("bAQIDBA=="),
            Err(EioError::BinaryNotSupported)
        );
    }

    #[test]
    fn the_open_packet_has_exactly_the_five_keys_in_node_order() {
        let packet = Handshake {
            sid: "lv_VI97HAXpY6yYWAAAC",
            upgrades: &["websocket"],
            ping_interval_ms: 25000,
            ping_timeout_ms: 20000,
            max_payload: 1_000_000,
        }
        .packet();
        assert_eq!(
            packet,
            r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
        let Ok(EioPacket::Open(json)) = EioPacket::decode(&packet) else {
            panic!("not an open packet: {packet}");
        };
        let body: serde_json::Map<String, Value> = serde_json::from_str(&json).unwrap();
        let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "maxPayload",
                "pingInterval",
                "pingTimeout",
                "sid",
                "upgrades"
            ]
        );
    }

    #[test]
    fn a_websocket_only_handshake_offers_no_upgrades() {
        let packet = Handshake {
            sid: "s\"1",
            upgrades: &[],
            ping_interval_ms: 300,
            ping_timeout_ms: 200,
            max_payload: 1_000_000,
        }
        .packet();
        assert_eq!(
            packet,
            r#"0{"sid":"s\"1","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#
        );
    }

    #[test]
    fn polling_payloads_split_on_the_record_separator() {
        assert_eq!(
            decode_payload("4hello\u{1e}2\u{1e}4world"),
            Ok(vec![
                EioPacket::Message("hello".into()),
                EioPacket::Ping(None),
                EioPacket::Message("world".into()),
            ])
        );
        assert_eq!(decode_payload("1"), Ok(vec![EioPacket::Close]));
        assert_eq!(
            encode_payload(&["4hello", "2", "4world"]),
            "4hello\u{1e}2\u{1e}4world"
        );
        assert_eq!(encode_payload(&["6".to_owned()]), "6");
        assert_eq!(encode_payload::<&str>(&[]), "");
    }

    #[test]
    fn bad_polling_payloads_are_errors() {
        assert_eq!(decode_payload(""), Err(EioError::Empty));
        assert_eq!(decode_payload("4a\u{1e}"), Err(EioError::Empty));
        assert_eq!(decode_payload("\u{1e}4a"), Err(EioError::Empty));
        assert_eq!(
            decode_payload("4a\u{1e}bAQID"),
            Err(EioError::BinaryNotSupported)
        );
        assert_eq!(
            decode_payload("4a\u{1e}abc\u{1e}bAQID"),
            Err(EioError::UnknownType('a'))
        );
    }

    fn packet() -> impl Strategy<Value = EioPacket> {
        // Ping/pong data is never empty: `Some("")` and `None` are the same on the wire.
        // Message text never holds the record separator, as JSON escapes it.
        let text = "[^\u{1e}]{0,24}";
        prop_oneof![
            text.prop_map(EioPacket::Open),
            Just(EioPacket::Close),
            proptest::option::of("[^\u{1e}]{1,8}").prop_map(EioPacket::Ping),
            proptest::option::of("[^\u{1e}]{1,8}").prop_map(EioPacket::Pong),
            text.prop_map(EioPacket::Message),
            Just(EioPacket::Upgrade),
            Just(EioPacket::Noop),
        ]
    }

    proptest! {
        #[test]
        fn decode_never_panics(text in "\\PC{0,64}") {
            let _ = EioPacket::decode(&text);
            let _ = decode_payload(&text);
        }

        #[test]
        fn decode_never_panics_on_any_chars(text in any::<String>()) {
            let _ = EioPacket::decode(&text);
            let _ = decode_payload(&text);
        }

        #[test]
        fn packets_round_trip(packet in packet()) {
            prop_assert_eq!(EioPacket::decode(&packet.encode()), Ok(packet));
        }

        #[test]
        fn payloads_round_trip(packets in proptest::collection::vec(packet(), 1..6)) {
            let encoded: Vec<String> = packets.iter().map(EioPacket::encode).collect();
            prop_assert_eq!(decode_payload(&encode_payload(&encoded)), Ok(packets));
        }
    }
}
