//! Engine.IO v4 packets (text only) and the long-polling payload format.

/// One Engine.IO packet (text only; binary is declined by this gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket {
    /// `0` + the JSON handshake.
    Open(String),
    /// `1`
    Close,
    /// `2` or `2probe`.
    Ping(Option<String>),
    /// `3` or `3probe`.
    Pong(Option<String>),
    /// `4` + text: one Socket.IO packet.
    Message(String),
    /// `5`
    Upgrade,
    /// `6`
    Noop,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EioError {
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type '{0}'")]
    UnknownType(char),
    #[error("binary packets are not supported")]
    BinaryNotSupported,
}

impl EioPacket {
    /// Parses one packet. Data after the type of `close`, `upgrade` and `noop` is ignored,
    /// as Node's parser does.
    pub fn decode(text: &str) -> Result<EioPacket, EioError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(EioError::Empty)?;
        let data = chars.as_str();
        let optional = |d: &str| (!d.is_empty()).then(|| d.to_owned());
        Ok(match kind {
            '0' => EioPacket::Open(data.to_owned()),
            '1' => EioPacket::Close,
            '2' => EioPacket::Ping(optional(data)),
            '3' => EioPacket::Pong(optional(data)),
            '4' => EioPacket::Message(data.to_owned()),
            '5' => EioPacket::Upgrade,
            '6' => EioPacket::Noop,
            'b' => return Err(EioError::BinaryNotSupported),
            other => return Err(EioError::UnknownType(other)),
        })
    }

    pub fn encode(&self) -> String {
        match self {
            EioPacket::Open(data) => format!("0{data}"),
            EioPacket::Close => "1".to_owned(),
            EioPacket::Ping(data) => format!("2{}", data.as_deref().unwrap_or("")),
            EioPacket::Pong(data) => format!("3{}", data.as_deref().unwrap_or("")),
            EioPacket::Message(data) => format!("4{data}"),
            EioPacket::Upgrade => "5".to_owned(),
            EioPacket::Noop => "6".to_owned(),
        }
    }
}

/// The handshake sent in the `open` packet: exactly the five keys the test suites expect.
pub struct Handshake<'a> {
    pub sid: &'a str,
    pub upgrades: &'a [&'a str],
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    pub max_payload: u64,
}

impl Handshake<'_> {
    /// The encoded `open` packet: `0{"sid":…,"upgrades":[…],"pingInterval":…,"pingTimeout":…,"maxPayload":…}`.
    pub fn packet(&self) -> String {
        let body = serde_json::json!({
            "sid": self.sid,
            "upgrades": self.upgrades,
            "pingInterval": self.ping_interval_ms,
            "pingTimeout": self.ping_timeout_ms,
            "maxPayload": self.max_payload,
        });
        format!("0{body}")
    }
}

/// Separates packets in a polling payload.
pub const RECORD_SEPARATOR: char = '\u{1e}';

/// Splits a polling POST body into packets. An empty body, an empty packet or a bad one
/// (including `b…` base64 binary packets) is an error: the session must close.
pub fn decode_payload(body: &str) -> Result<Vec<EioPacket>, EioError> {
    body.split(RECORD_SEPARATOR)
        .map(EioPacket::decode)
        .collect()
}

/// Joins encoded packets for a polling GET response.
pub fn encode_payload<S: AsRef<str>>(packets: &[S]) -> String {
    let mut out = String::with_capacity(packets.iter().map(|p| p.as_ref().len() + 1).sum());
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
            EioPacket::Upgrade,
            EioPacket::Noop,
        ];
        for packet in packets {
            assert_eq!(EioPacket::decode(&packet.encode()), Ok(packet));
        }
        assert_eq!(
            EioPacket::decode("42[\"a\"]"),
            Ok(EioPacket::Message("2[\"a\"]".into()))
        );
    }

    #[test]
    fn bad_packets_are_errors() {
        assert_eq!(EioPacket::decode(""), Err(EioError::Empty));
        assert_eq!(EioPacket::decode("abc"), Err(EioError::UnknownType('a')));
        assert_eq!(EioPacket::decode("9"), Err(EioError::UnknownType('9')));
        assert_eq!(
            EioPacket::decode("bAQID"),
            Err(EioError::BinaryNotSupported)
        );
    }

    #[test]
    fn the_open_packet_has_exactly_five_keys() {
        let packet = Handshake {
            sid: "abc",
            upgrades: &["websocket"],
            ping_interval_ms: 25000,
            ping_timeout_ms: 20000,
            max_payload: 1_000_000,
        }
        .packet();
        assert!(packet.starts_with('0'));
        let value: serde_json::Value = serde_json::from_str(&packet[1..]).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"sid": "abc", "upgrades": ["websocket"], "pingInterval": 25000, "pingTimeout": 20000, "maxPayload": 1000000})
        );
    }

    #[test]
    fn polling_payloads_split_and_join_on_the_record_separator() {
        let packets = decode_payload("4hello\u{1e}2\u{1e}4world").unwrap();
        assert_eq!(
            packets,
            vec![
                EioPacket::Message("hello".into()),
                EioPacket::Ping(None),
                EioPacket::Message("world".into())
            ]
        );
        assert_eq!(
            encode_payload(&["4hello", "2", "4world"]),
            "4hello\u{1e}2\u{1e}4world"
        );
        assert_eq!(
            decode_payload("4a\u{1e}bAQID"),
            Err(EioError::BinaryNotSupported)
        );
        assert_eq!(decode_payload(""), Err(EioError::Empty));
        assert_eq!(decode_payload("4a\u{1e}"), Err(EioError::Empty));
    }

    proptest! {
        #[test]
        fn decode_never_panics(text in "\\PC{0,64}") {
            let _ = EioPacket::decode(&text);
            let _ = decode_payload(&text);
        }

        #[test]
        fn messages_round_trip(text in "\\PC{0,64}") {
            let packet = EioPacket::Message(text);
            prop_assert_eq!(EioPacket::decode(&packet.encode()), Ok(packet));
        }
    }
}
