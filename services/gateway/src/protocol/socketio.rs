//! Socket.IO v5 packets, as carried in Engine.IO messages:
//! `<type>[<#attachments>-][<nsp>,][<ackId>][JSON payload]`, the namespace left out when `/`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum SioPacket {
    Connect {
        nsp: String,
        auth: Option<Value>,
    },
    Disconnect {
        nsp: String,
    },
    Event {
        nsp: String,
        ack: Option<u64>,
        name: String,
        args: Vec<Value>,
    },
    Ack {
        nsp: String,
        id: u64,
        args: Vec<Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SioError {
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type '{0}'")]
    UnknownType(char),
    #[error("binary packets are not supported")]
    BinaryNotSupported,
    #[error("invalid namespace")]
    InvalidNamespace,
    #[error("invalid ack id")]
    InvalidAckId,
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    #[error("reserved event name '{0}'")]
    ReservedEvent(String),
}

/// Event names neither side may emit.
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

impl SioPacket {
    pub fn decode(text: &str) -> Result<SioPacket, SioError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(SioError::Empty)?;
        let mut rest = chars.as_str();
        match kind {
            '0'..='4' => {}
            '5' | '6' => return Err(SioError::BinaryNotSupported),
            other => return Err(SioError::UnknownType(other)),
        }
        // Namespace: from a leading '/' up to the first ','.
        let nsp = if rest.starts_with('/') {
            match rest.find(',') {
                Some(end) => {
                    let nsp = &rest[..end];
                    rest = &rest[end + 1..];
                    nsp.to_owned()
                }
                None => {
                    let nsp = rest.to_owned();
                    rest = "";
                    nsp
                }
            }
        } else {
            "/".to_owned()
        };
        if nsp.is_empty() || nsp.chars().any(char::is_control) {
            return Err(SioError::InvalidNamespace);
        }
        // Ack id: the digits right before the payload.
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let ack = if digits > 0 {
            Some(
                rest[..digits]
                    .parse::<u64>()
                    .map_err(|_| SioError::InvalidAckId)?,
            )
        } else {
            None
        };
        rest = &rest[digits..];
        let payload = if rest.is_empty() {
            None
        } else {
            Some(serde_json::from_str::<Value>(rest).map_err(|_| {
                if ack.is_none() && !rest.starts_with(['[', '{', '"']) {
                    SioError::InvalidAckId
                } else {
                    SioError::InvalidPayload("not JSON".into())
                }
            })?)
        };
        match kind {
            '0' => match payload {
                None => Ok(SioPacket::Connect { nsp, auth: None }),
                Some(Value::Object(map)) if ack.is_none() => Ok(SioPacket::Connect {
                    nsp,
                    auth: Some(Value::Object(map)),
                }),
                _ => Err(SioError::InvalidPayload(
                    "CONNECT takes an object or nothing".into(),
                )),
            },
            '1' => match (payload, ack) {
                (None, None) => Ok(SioPacket::Disconnect { nsp }),
                _ => Err(SioError::InvalidPayload(
                    "DISCONNECT takes no payload".into(),
                )),
            },
            '2' => {
                let Some(Value::Array(mut items)) = payload else {
                    return Err(SioError::InvalidPayload(
                        "EVENT takes a non-empty array".into(),
                    ));
                };
                if items.is_empty() {
                    return Err(SioError::InvalidPayload(
                        "EVENT takes a non-empty array".into(),
                    ));
                }
                let name = match items.remove(0) {
                    Value::String(name) => name,
                    Value::Number(number) => number.to_string(),
                    _ => return Err(SioError::InvalidPayload("an event name is a string".into())),
                };
                if RESERVED_EVENTS.contains(&name.as_str()) {
                    return Err(SioError::ReservedEvent(name));
                }
                Ok(SioPacket::Event {
                    nsp,
                    ack,
                    name,
                    args: items,
                })
            }
            '3' => match (payload, ack) {
                (Some(Value::Array(args)), Some(id)) => Ok(SioPacket::Ack { nsp, id, args }),
                (_, None) => Err(SioError::InvalidAckId),
                _ => Err(SioError::InvalidPayload("ACK takes an array".into())),
            },
            // CONNECT_ERROR is server → client only.
            _ => Err(SioError::InvalidPayload(
                "CONNECT_ERROR is sent by servers only".into(),
            )),
        }
    }
}

/// `<nsp>,` or nothing for the main namespace.
fn prefix(nsp: &str) -> String {
    if nsp == "/" {
        String::new()
    } else {
        format!("{nsp},")
    }
}

fn array(first: Option<&str>, args: &[Value]) -> String {
    let mut items = Vec::with_capacity(args.len() + 1);
    if let Some(name) = first {
        items.push(Value::String(name.to_owned()));
    }
    items.extend_from_slice(args);
    Value::Array(items).to_string()
}

pub fn encode_connect_ok(nsp: &str, sid: &str) -> String {
    format!("0{}{}", prefix(nsp), serde_json::json!({ "sid": sid }))
}

pub fn encode_connect_error(nsp: &str, message: &str, data: Option<&Value>) -> String {
    let body = match data {
        Some(data) => serde_json::json!({ "message": message, "data": data }),
        None => serde_json::json!({ "message": message }),
    };
    format!("4{}{}", prefix(nsp), body)
}

pub fn encode_event(nsp: &str, name: &str, args: &[Value], ack: Option<u64>) -> String {
    let id = ack.map(|id| id.to_string()).unwrap_or_default();
    format!("2{}{}{}", prefix(nsp), id, array(Some(name), args))
}

pub fn encode_ack(nsp: &str, id: u64, args: &[Value]) -> String {
    format!("3{}{}{}", prefix(nsp), id, array(None, args))
}

pub fn encode_disconnect(nsp: &str) -> String {
    format!("1{}", prefix(nsp))
}

/// The full WebSocket/polling frame of an event: `4` + [`encode_event`]. The broadcast
/// path encodes each event once and writes the same bytes to every socket.
pub fn event_frame(nsp: &str, name: &str, args: &[Value]) -> String {
    format!("4{}", encode_event(nsp, name, args, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn event(nsp: &str, ack: Option<u64>, name: &str, args: Vec<Value>) -> SioPacket {
        SioPacket::Event {
            nsp: nsp.into(),
            ack,
            name: name.into(),
            args,
        }
    }

    #[test]
    fn the_protocol_examples_decode() {
        assert_eq!(
            SioPacket::decode("0"),
            Ok(SioPacket::Connect {
                nsp: "/".into(),
                auth: None
            })
        );
        assert_eq!(
            SioPacket::decode(r#"0{"token":"abc"}"#),
            Ok(SioPacket::Connect {
                nsp: "/".into(),
                auth: Some(json!({"token": "abc"}))
            })
        );
        assert_eq!(
            SioPacket::decode(r#"0/admin,{"token":"abc"}"#),
            Ok(SioPacket::Connect {
                nsp: "/admin".into(),
                auth: Some(json!({"token": "abc"}))
            })
        );
        assert_eq!(
            SioPacket::decode("0/admin,"),
            Ok(SioPacket::Connect {
                nsp: "/admin".into(),
                auth: None
            })
        );
        assert_eq!(
            SioPacket::decode(r#"212["project:join",{"projectId":"p1"}]"#),
            Ok(event(
                "/",
                Some(12),
                "project:join",
                vec![json!({"projectId": "p1"})]
            ))
        );
        assert_eq!(
            SioPacket::decode(r#"312[{"ok":true}]"#),
            Ok(SioPacket::Ack {
                nsp: "/".into(),
                id: 12,
                args: vec![json!({"ok": true})]
            })
        );
        assert_eq!(
            SioPacket::decode(r#"2/admin,13["x"]"#),
            Ok(event("/admin", Some(13), "x", vec![]))
        );
        assert_eq!(
            SioPacket::decode("1"),
            Ok(SioPacket::Disconnect { nsp: "/".into() })
        );
        assert_eq!(
            SioPacket::decode("1/admin,"),
            Ok(SioPacket::Disconnect {
                nsp: "/admin".into()
            })
        );
        assert_eq!(
            SioPacket::decode("2[1,2]"),
            Ok(event("/", None, "1", vec![json!(2)]))
        );
    }

    #[test]
    fn invalid_packets_are_refused() {
        assert_eq!(SioPacket::decode(""), Err(SioError::Empty));
        assert_eq!(
            SioPacket::decode("2{}"),
            Err(SioError::InvalidPayload(
                "EVENT takes a non-empty array".into()
            ))
        );
        assert_eq!(
            SioPacket::decode("2[]"),
            Err(SioError::InvalidPayload(
                "EVENT takes a non-empty array".into()
            ))
        );
        assert_eq!(
            SioPacket::decode(r#"2abc["x"]"#),
            Err(SioError::InvalidAckId)
        );
        assert_eq!(
            SioPacket::decode(r#"51-["upload",{"_placeholder":true,"num":0}]"#),
            Err(SioError::BinaryNotSupported)
        );
        assert_eq!(
            SioPacket::decode("61-15[]"),
            Err(SioError::BinaryNotSupported)
        );
        assert_eq!(
            SioPacket::decode(r#"2["disconnect"]"#),
            Err(SioError::ReservedEvent("disconnect".into()))
        );
        assert_eq!(SioPacket::decode("9"), Err(SioError::UnknownType('9')));
        assert!(SioPacket::decode("0[1]").is_err());
        assert!(SioPacket::decode("3[]").is_err());
        assert!(SioPacket::decode("1[]").is_err());
        assert!(SioPacket::decode(r#"4{"message":"x"}"#).is_err());
        assert_eq!(
            SioPacket::decode("299999999999999999999999[\"x\"]"),
            Err(SioError::InvalidAckId)
        );
        assert!(SioPacket::decode("2[\"x\"").is_err());
    }

    #[test]
    fn encoders_produce_the_protocol_examples() {
        assert_eq!(encode_connect_ok("/", "s1"), r#"0{"sid":"s1"}"#);
        assert_eq!(encode_connect_ok("/admin", "s1"), r#"0/admin,{"sid":"s1"}"#);
        assert_eq!(
            encode_connect_error("/random", "Invalid namespace", None),
            r#"4/random,{"message":"Invalid namespace"}"#
        );
        assert_eq!(
            encode_connect_error(
                "/",
                "Not authorized",
                Some(&json!({"code": "UNAUTHORIZED"}))
            ),
            r#"4{"data":{"code":"UNAUTHORIZED"},"message":"Not authorized"}"#
        );
        assert_eq!(
            encode_ack("/", 12, &[json!({"ok": true})]),
            r#"312[{"ok":true}]"#
        );
        assert_eq!(encode_ack("/admin", 13, &[]), "3/admin,13[]");
        assert_eq!(
            encode_event("/", "ticket:moved", &[json!({"a": 1})], None),
            r#"2["ticket:moved",{"a":1}]"#
        );
        assert_eq!(
            event_frame("/", "x", &[json!(1), json!(2)]),
            r#"42["x",1,2]"#
        );
        assert_eq!(encode_disconnect("/"), "1");
        assert_eq!(encode_disconnect("/admin"), "1/admin,");
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::hash_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn decode_never_panics(text in "\\PC{0,80}") {
            let _ = SioPacket::decode(&text);
        }

        #[test]
        fn events_and_acks_round_trip(
            nsp in prop_oneof![Just("/".to_owned()), "/[a-z]{1,8}"],
            name in "[a-z:]{1,16}",
            ack in proptest::option::of(0u64..1_000_000),
            args in proptest::collection::vec(json_value(), 0..4),
        ) {
            prop_assume!(!RESERVED_EVENTS.contains(&name.as_str()));
            let encoded = encode_event(&nsp, &name, &args, ack);
            prop_assert_eq!(SioPacket::decode(&encoded), Ok(SioPacket::Event { nsp: nsp.clone(), ack, name, args: args.clone() }));
            let id = ack.unwrap_or(0);
            prop_assert_eq!(SioPacket::decode(&encode_ack(&nsp, id, &args)), Ok(SioPacket::Ack { nsp, id, args }));
        }
    }
}
