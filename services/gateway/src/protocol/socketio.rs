//! Socket.IO v5 packets, as carried in Engine.IO messages:
//! `<type>[<#attachments>-][<nsp>,][<ackId>][JSON payload]`, the namespace left out when `/`.
//!
//! Decoding follows socket.io-parser 4.2.x (`Decoder.decodeString` and `isPayloadValid`),
//! stricter in a few corners no stock client reaches; each is noted where it is decided.
//! Binary packets (types 5 and 6) are declined by this gateway.

use std::fmt::Write as _;

use serde_json::{Number, Value};

/// A Socket.IO packet the server can receive. CONNECT_ERROR is server → client only, and the
/// binary types are declined, so neither has a variant.
#[derive(Debug, Clone, PartialEq)]
pub enum SioPacket {
    /// `0[nsp,][{auth}]`: join a namespace, with the client's `auth` object if it has one.
    Connect { nsp: String, auth: Option<Value> },
    /// `1[nsp,]`: leave a namespace.
    Disconnect { nsp: String },
    /// `2[nsp,][ack]["name",...args]`: an event, wanting an acknowledgement when `ack` is set.
    Event {
        nsp: String,
        ack: Option<u64>,
        name: String,
        args: Vec<Value>,
    },
    /// `3[nsp,]<id>[...args]`: the answer to the event that carried ack id `id`.
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
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    #[error("binary packets are not supported")]
    BinaryNotSupported,
    #[error("invalid namespace")]
    InvalidNamespace,
    #[error("invalid ack id")]
    InvalidAckId,
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    #[error("reserved event name {0:?}")]
    ReservedEvent(String),
}

/// Event names neither side may emit: the client and server libraries use them for their own
/// lifecycle events, so an incoming one would be confused with a real connect/disconnect.
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// The main namespace, which the wire format leaves out.
const MAIN_NSP: &str = "/";

impl SioPacket {
    /// Parses the text of one Engine.IO message (without its `4`). Any error means the
    /// session must close, as the Node server does on a parser error.
    pub fn decode(text: &str) -> Result<SioPacket, SioError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(SioError::Empty)?;
        match kind {
            '0'..='3' => {}
            '4' => {
                return Err(SioError::InvalidPayload(
                    "CONNECT_ERROR is sent by servers only".into(),
                ))
            }
            // Declined before looking at the attachment count: whatever follows needs binary
            // frames this gateway does not take.
            '5' | '6' => return Err(SioError::BinaryNotSupported),
            other => return Err(SioError::UnknownType(other)),
        }
        let (nsp, rest) = split_namespace(chars.as_str())?;
        let (ack, rest) = split_ack_id(rest)?;
        let payload = parse_payload(rest)?;
        let nsp = nsp.to_owned();
        match kind {
            '0' => {
                // socket.io-parser ignores an id on CONNECT/DISCONNECT; no client sends one,
                // and a packet that cannot be acknowledged has no use for it, so it is refused.
                if ack.is_some() {
                    return Err(SioError::InvalidAckId);
                }
                match payload {
                    None => Ok(SioPacket::Connect { nsp, auth: None }),
                    Some(auth @ Value::Object(_)) => Ok(SioPacket::Connect {
                        nsp,
                        auth: Some(auth),
                    }),
                    Some(_) => Err(invalid("CONNECT takes an object or nothing")),
                }
            }
            '1' => {
                if ack.is_some() {
                    return Err(SioError::InvalidAckId);
                }
                match payload {
                    None => Ok(SioPacket::Disconnect { nsp }),
                    Some(_) => Err(invalid("DISCONNECT takes no payload")),
                }
            }
            '2' => {
                // socket.io-parser lets an EVENT with no payload through (it only checks a
                // payload that is there); the server then dispatches an event with no name.
                // Refused here: an event is a non-empty array.
                let Some(Value::Array(mut items)) = payload else {
                    return Err(invalid("EVENT takes a non-empty array"));
                };
                if items.is_empty() {
                    return Err(invalid("EVENT takes a non-empty array"));
                }
                let name = match items.remove(0) {
                    Value::String(name) => name,
                    // socket.io-parser accepts a number as the name (`socket.emit(1)`), and
                    // JavaScript listeners see it as its string form.
                    Value::Number(number) => js_number_string(&number),
                    _ => return Err(invalid("an event name is a string or a number")),
                };
                if is_reserved(&name) {
                    return Err(SioError::ReservedEvent(name));
                }
                Ok(SioPacket::Event {
                    nsp,
                    ack,
                    name,
                    args: items,
                })
            }
            _ => {
                let Some(id) = ack else {
                    return Err(SioError::InvalidAckId);
                };
                match payload {
                    Some(Value::Array(args)) => Ok(SioPacket::Ack { nsp, id, args }),
                    _ => Err(invalid("ACK takes an array")),
                }
            }
        }
    }

    /// The packet's text (without the Engine.IO `4`), the inverse of [`SioPacket::decode`].
    pub fn encode(&self) -> String {
        match self {
            SioPacket::Connect { nsp, auth } => {
                let mut out = String::from("0");
                push_namespace(&mut out, nsp);
                if let Some(auth) = auth {
                    push_json(&mut out, auth);
                }
                out
            }
            SioPacket::Disconnect { nsp } => encode_disconnect(nsp),
            SioPacket::Event {
                nsp,
                ack,
                name,
                args,
            } => encode_event(nsp, name, args, *ack),
            SioPacket::Ack { nsp, id, args } => encode_ack(nsp, *id, args),
        }
    }
}

/// Whether `name` is one of the [`RESERVED_EVENTS`].
pub fn is_reserved(name: &str) -> bool {
    RESERVED_EVENTS.contains(&name)
}

fn invalid(reason: &str) -> SioError {
    SioError::InvalidPayload(reason.to_owned())
}

/// Splits off the namespace: from a leading `/` to the first `,`, or to the end when there is
/// no comma (socket.io-parser accepts `1/admin` as well as `1/admin,`). Without a leading `/`
/// the packet is for the main namespace.
fn split_namespace(text: &str) -> Result<(&str, &str), SioError> {
    if !text.starts_with('/') {
        return Ok((MAIN_NSP, text));
    }
    let (nsp, rest) = text.split_once(',').unwrap_or((text, ""));
    // socket.io-parser takes any characters here, but a namespace comes from a URL path,
    // which cannot hold control characters; refusing them keeps them out of logs and keeps
    // the record separator out of re-encoded polling payloads.
    if nsp.chars().any(char::is_control) {
        return Err(SioError::InvalidNamespace);
    }
    Ok((nsp, rest))
}

/// Splits off the ack id: the ASCII digits right before the payload.
fn split_ack_id(text: &str) -> Result<(Option<u64>, &str), SioError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (id, rest) = text.split_at(digits);
    if !id.is_empty() {
        // Only overflow can fail here: the string is all digits.
        let id = id.parse::<u64>().map_err(|_| SioError::InvalidAckId)?;
        return Ok((Some(id), rest));
    }
    // With no digits, the next character is the payload's first. One that cannot start a
    // JSON value (`42abc["x"]`) is a malformed ack id. Whitespace counts as malformed too:
    // socket.io-parser reads ` ` as the digit 0 (`Number(" ") == 0`), so there is no meaning
    // both sides would agree on.
    match rest.chars().next() {
        Some(c) if !starts_json_value(c) => Err(SioError::InvalidAckId),
        _ => Ok((None, rest)),
    }
}

fn starts_json_value(c: char) -> bool {
    matches!(c, '[' | '{' | '"' | '-' | 't' | 'f' | 'n') || c.is_ascii_digit()
}

/// The JSON payload, `None` when the packet ends before it.
fn parse_payload(text: &str) -> Result<Option<Value>, SioError> {
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| SioError::InvalidPayload(format!("not JSON: {e}")))
}

/// The string a JavaScript listener sees for a numeric event name (`String(n)`). Exact for
/// integers, which is what `socket.emit(1)` sends; other numbers use serde_json's shortest
/// form, which can differ from JavaScript's in the exponent notation.
fn js_number_string(number: &Number) -> String {
    if let Some(n) = number.as_i64() {
        return n.to_string();
    }
    if let Some(n) = number.as_u64() {
        return n.to_string();
    }
    match number.as_f64() {
        // JavaScript prints integral values without a fraction below 1e21, and -0 as "0" (the
        // pattern `0.0` matches -0.0 too).
        Some(0.0) => "0".to_owned(),
        Some(n) if n.fract() == 0.0 && n.abs() < 1e21 => format!("{n:.0}"),
        _ => number.to_string(),
    }
}

/// Appends `<nsp>,`, or nothing for the main namespace.
fn push_namespace(out: &mut String, nsp: &str) {
    if nsp == MAIN_NSP || nsp.is_empty() {
        return;
    }
    debug_assert!(
        nsp.starts_with('/') && !nsp.contains(','),
        "a namespace starts with '/' and holds no ',': {nsp:?}"
    );
    out.push_str(nsp);
    out.push(',');
}

/// Appends `value` as compact JSON.
fn push_json(out: &mut String, value: &Value) {
    // Writing to a String cannot fail, and a `Value` always displays (it holds no NaN).
    let _ = write!(out, "{value}");
}

/// Appends `text` as a JSON string literal.
fn push_json_str(out: &mut String, text: &str) {
    push_json(out, &Value::from(text));
}

/// Appends `[name, ...args]` (or `[...args]` without a name), writing each argument in place
/// rather than cloning them all into one `Value::Array` first.
fn push_args(out: &mut String, name: Option<&str>, args: &[Value]) {
    out.push('[');
    let mut first = true;
    if let Some(name) = name {
        push_json_str(out, name);
        first = false;
    }
    for arg in args {
        if !first {
            out.push(',');
        }
        push_json(out, arg);
        first = false;
    }
    out.push(']');
}

fn push_event(out: &mut String, nsp: &str, name: &str, args: &[Value], ack: Option<u64>) {
    out.push('2');
    push_namespace(out, nsp);
    if let Some(id) = ack {
        let _ = write!(out, "{id}");
    }
    push_args(out, Some(name), args);
}

/// The server's CONNECT reply: `0{"sid":".."}` or `0/admin,{"sid":".."}`. `sid` is the
/// Socket.IO socket id (not the Engine.IO one); the client refuses a reply without it.
pub fn encode_connect_ok(nsp: &str, sid: &str) -> String {
    let mut out = String::with_capacity(16 + nsp.len() + sid.len());
    out.push('0');
    push_namespace(&mut out, nsp);
    out.push_str("{\"sid\":");
    push_json_str(&mut out, sid);
    out.push('}');
    out
}

/// A refused CONNECT: `4{"message":..,"data":..}`, `data` left out when `None`. The client
/// fires `connect_error` with both and does not retry on its own.
pub fn encode_connect_error(nsp: &str, message: &str, data: Option<&Value>) -> String {
    let mut out = String::with_capacity(32 + nsp.len() + message.len());
    out.push('4');
    push_namespace(&mut out, nsp);
    // Written by hand so `message` comes first, as Node writes it (a JSON map would sort it
    // after `data`).
    out.push_str("{\"message\":");
    push_json_str(&mut out, message);
    if let Some(data) = data {
        out.push_str(",\"data\":");
        push_json(&mut out, data);
    }
    out.push('}');
    out
}

/// An event: `2["name",...]`, or `2/admin,12["name",...]` with a namespace and an ack id.
/// A typed payload ([`kanban_protocol`]) as a packet argument. Through a `Value`, object
/// keys come out sorted, as every payload has always been sent.
pub fn arg<T: serde::Serialize>(payload: &T) -> Value {
    serde_json::to_value(payload).unwrap_or_else(|error| {
        // Only maps with non-string keys fail, and no wire type has one.
        tracing::error!(%error, "encoding a payload failed");
        Value::Null
    })
}

pub fn encode_event(nsp: &str, name: &str, args: &[Value], ack: Option<u64>) -> String {
    let mut out = String::with_capacity(64);
    push_event(&mut out, nsp, name, args, ack);
    out
}

/// The answer to an event that carried ack id `id`: `3<id>[...]` or `3/admin,<id>[...]`.
pub fn encode_ack(nsp: &str, id: u64, args: &[Value]) -> String {
    let mut out = String::with_capacity(32);
    out.push('3');
    push_namespace(&mut out, nsp);
    let _ = write!(out, "{id}");
    push_args(&mut out, None, args);
    out
}

/// The server leaving a namespace: `1` or `1/admin,`. The client reports
/// `io server disconnect` and does not reconnect.
pub fn encode_disconnect(nsp: &str) -> String {
    let mut out = String::from("1");
    push_namespace(&mut out, nsp);
    out
}

/// The full WebSocket/polling frame for an event: "4" + encode_event(..). Used on the broadcast
/// hot path, where each event is encoded once and the same bytes are written to many sockets.
pub fn event_frame(nsp: &str, name: &str, args: &[Value]) -> String {
    let mut out = String::with_capacity(128);
    out.push('4');
    push_event(&mut out, nsp, name, args, None);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::engineio::{decode_payload, encode_payload, EioPacket};
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

    /// Decodes a whole Engine.IO text frame, as the session does.
    fn decode_frame(frame: &str) -> Result<SioPacket, SioError> {
        match EioPacket::decode(frame) {
            Ok(EioPacket::Message(text)) => SioPacket::decode(&text),
            other => panic!("{frame:?} is not a message: {other:?}"),
        }
    }

    #[test]
    fn connect_without_auth() {
        let packet = SioPacket::Connect {
            nsp: "/".into(),
            auth: None,
        };
        assert_eq!(decode_frame("40"), Ok(packet.clone()));
        assert_eq!(packet.encode(), "0");
    }

    #[test]
    fn connect_with_auth() {
        let packet = SioPacket::Connect {
            nsp: "/".into(),
            auth: Some(json!({"token": "abc"})),
        };
        assert_eq!(decode_frame(r#"40{"token":"abc"}"#), Ok(packet.clone()));
        assert_eq!(packet.encode(), r#"0{"token":"abc"}"#);
    }

    #[test]
    fn connect_to_a_custom_namespace() {
        let packet = SioPacket::Connect {
            nsp: "/admin".into(),
            auth: Some(json!({"token": "abc"})),
        };
        assert_eq!(
            decode_frame(r#"40/admin,{"token":"abc"}"#),
            Ok(packet.clone())
        );
        assert_eq!(packet.encode(), r#"0/admin,{"token":"abc"}"#);
        assert_eq!(
            SioPacket::decode("0/admin,"),
            Ok(SioPacket::Connect {
                nsp: "/admin".into(),
                auth: None
            })
        );
    }

    #[test]
    fn a_namespace_may_end_the_packet_without_a_comma_like_socketio_parser() {
        assert_eq!(
            SioPacket::decode("0/admin"),
            Ok(SioPacket::Connect {
                nsp: "/admin".into(),
                auth: None
            })
        );
        assert_eq!(
            SioPacket::decode("1/admin"),
            Ok(SioPacket::Disconnect {
                nsp: "/admin".into()
            })
        );
    }

    #[test]
    fn connect_takes_only_an_object() {
        for text in ["0[1]", "0\"tok\"", "01", "0null", "0/admin,[]"] {
            assert!(SioPacket::decode(text).is_err(), "{text}");
        }
        assert!(matches!(
            SioPacket::decode("0[1]"),
            Err(SioError::InvalidPayload(_))
        ));
    }

    #[test]
    fn an_ack_id_on_connect_or_disconnect_is_refused() {
        assert_eq!(SioPacket::decode("01{}"), Err(SioError::InvalidAckId));
        assert_eq!(SioPacket::decode("11"), Err(SioError::InvalidAckId));
    }

    #[test]
    fn an_event_with_an_ack_id() {
        let packet = event(
            "/",
            Some(12),
            "project:join",
            vec![json!({"projectId": "p1"})],
        );
        let frame = r#"4212["project:join",{"projectId":"p1"}]"#;
        assert_eq!(decode_frame(frame), Ok(packet.clone()));
        assert_eq!(format!("4{}", packet.encode()), frame);
    }

    #[test]
    fn a_plain_event() {
        let frame = r#"42["ticket:move",{"projectId":"p1","ticketId":"t1"}]"#;
        let packet = event(
            "/",
            None,
            "ticket:move",
            vec![json!({"projectId": "p1", "ticketId": "t1"})],
        );
        assert_eq!(decode_frame(frame), Ok(packet.clone()));
        assert_eq!(
            event_frame(
                "/",
                "ticket:move",
                &[json!({"projectId": "p1", "ticketId": "t1"})]
            ),
            frame
        );
    }

    #[test]
    fn an_ack_reply() {
        let packet = SioPacket::Ack {
            nsp: "/".into(),
            id: 12,
            args: vec![json!({"ok": true, "userCount": 3})],
        };
        assert_eq!(
            decode_frame(r#"4312[{"ok":true,"userCount":3}]"#),
            Ok(packet)
        );
        assert_eq!(
            encode_ack("/", 12, &[json!({"ok": true, "userCount": 3})]),
            r#"312[{"ok":true,"userCount":3}]"#
        );
    }

    #[test]
    fn an_event_and_its_ack_in_a_namespace() {
        assert_eq!(
            decode_frame(r#"42/admin,13["x"]"#),
            Ok(event("/admin", Some(13), "x", vec![]))
        );
        assert_eq!(encode_ack("/admin", 13, &[]), "3/admin,13[]");
        assert_eq!(
            decode_frame("43/admin,13[]"),
            Ok(SioPacket::Ack {
                nsp: "/admin".into(),
                id: 13,
                args: vec![]
            })
        );
        assert_eq!(
            encode_event("/admin", "x", &[], Some(13)),
            r#"2/admin,13["x"]"#
        );
    }

    #[test]
    fn disconnect() {
        assert_eq!(
            decode_frame("41"),
            Ok(SioPacket::Disconnect { nsp: "/".into() })
        );
        assert_eq!(
            decode_frame("41/admin,"),
            Ok(SioPacket::Disconnect {
                nsp: "/admin".into()
            })
        );
        assert_eq!(encode_disconnect("/"), "1");
        assert_eq!(encode_disconnect("/admin"), "1/admin,");
        assert!(matches!(
            SioPacket::decode("1[]"),
            Err(SioError::InvalidPayload(_))
        ));
    }

    #[test]
    fn connect_replies() {
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
            r#"4{"message":"Not authorized","data":{"code":"UNAUTHORIZED"}}"#
        );
    }

    #[test]
    fn encoders_escape_strings() {
        assert_eq!(
            encode_connect_error("/", "say \"no\"\n", None),
            r#"4{"message":"say \"no\"\n"}"#
        );
        assert_eq!(encode_connect_ok("/", "a\"b"), r#"0{"sid":"a\"b"}"#);
        assert_eq!(
            encode_event("/", "a\u{1e}\"", &[json!("\u{1e}")], None),
            r#"2["a\u001e\"","\u001e"]"#
        );
    }

    #[test]
    fn event_frame_is_the_message_of_encode_event() {
        let args = [json!(1), json!({"b": [true, null]})];
        assert_eq!(
            event_frame("/", "x", &args),
            r#"42["x",1,{"b":[true,null]}]"#
        );
        assert_eq!(
            event_frame("/admin", "x", &args),
            format!("4{}", encode_event("/admin", "x", &args, None))
        );
    }

    #[test]
    fn a_numeric_event_name_becomes_its_string_form() {
        assert_eq!(
            SioPacket::decode("2[1,2]"),
            Ok(event("/", None, "1", vec![json!(2)]))
        );
        assert_eq!(
            SioPacket::decode("2[-3]"),
            Ok(event("/", None, "-3", vec![]))
        );
        assert_eq!(
            SioPacket::decode("2[1.0]"),
            Ok(event("/", None, "1", vec![]))
        );
        assert_eq!(
            SioPacket::decode("2[-0.0]"),
            Ok(event("/", None, "0", vec![]))
        );
        assert_eq!(
            SioPacket::decode("2[1.5]"),
            Ok(event("/", None, "1.5", vec![]))
        );
        assert_eq!(
            SioPacket::decode("2[1e20]"),
            Ok(event("/", None, "100000000000000000000", vec![]))
        );
    }

    #[test]
    fn an_event_name_must_be_a_string_or_a_number() {
        for text in [r#"2[null]"#, r#"2[{"a":1}]"#, r#"2[["x"]]"#, "2[true]"] {
            assert!(
                matches!(SioPacket::decode(text), Err(SioError::InvalidPayload(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn an_event_payload_must_be_a_non_empty_array() {
        for text in ["2{}", "2[]", "2", "212", r#"2"x""#, "2/admin,", "2/admin,1"] {
            assert!(
                matches!(SioPacket::decode(text), Err(SioError::InvalidPayload(_))),
                "{text}"
            );
        }
        assert!(matches!(
            decode_frame("42{}"),
            Err(SioError::InvalidPayload(_))
        ));
    }

    #[test]
    fn reserved_event_names_are_refused() {
        for name in RESERVED_EVENTS {
            let text = format!("2[\"{name}\",1]");
            assert_eq!(
                SioPacket::decode(&text),
                Err(SioError::ReservedEvent((*name).to_owned()))
            );
        }
        assert_eq!(
            decode_frame(r#"42/admin,7["disconnect"]"#),
            Err(SioError::ReservedEvent("disconnect".into()))
        );
        // Only exact names are reserved.
        assert_eq!(
            SioPacket::decode(r#"2["Connect"]"#),
            Ok(event("/", None, "Connect", vec![]))
        );
    }

    #[test]
    fn a_malformed_ack_id_is_refused() {
        assert_eq!(decode_frame(r#"42abc["x"]"#), Err(SioError::InvalidAckId));
        assert_eq!(
            SioPacket::decode(r#"2/admin,abc["x"]"#),
            Err(SioError::InvalidAckId)
        );
        assert_eq!(SioPacket::decode(r#"2 ["x"]"#), Err(SioError::InvalidAckId));
        assert_eq!(
            SioPacket::decode(r#"2+1["x"]"#),
            Err(SioError::InvalidAckId)
        );
    }

    #[test]
    fn an_ack_id_past_u64_is_refused() {
        assert_eq!(
            SioPacket::decode(r#"218446744073709551615["x"]"#),
            Ok(event("/", Some(u64::MAX), "x", vec![]))
        );
        assert_eq!(
            SioPacket::decode(r#"218446744073709551616["x"]"#),
            Err(SioError::InvalidAckId)
        );
        assert_eq!(
            SioPacket::decode("399999999999999999999999[]"),
            Err(SioError::InvalidAckId)
        );
    }

    #[test]
    fn an_ack_needs_an_id_and_an_array() {
        assert_eq!(SioPacket::decode("3[]"), Err(SioError::InvalidAckId));
        assert_eq!(
            SioPacket::decode("3/admin,[1]"),
            Err(SioError::InvalidAckId)
        );
        assert!(matches!(
            SioPacket::decode("312"),
            Err(SioError::InvalidPayload(_))
        ));
        assert!(matches!(
            SioPacket::decode("312{}"),
            Err(SioError::InvalidPayload(_))
        ));
    }

    #[test]
    fn invalid_json_is_refused() {
        for text in [r#"2["x""#, r#"2["x"]]"#, "0{token}", r#"212["x"]abc"#] {
            assert!(
                matches!(SioPacket::decode(text), Err(SioError::InvalidPayload(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn binary_packets_are_declined() {
        for frame in [
            r#"451-["upload",{"_placeholder":true,"num":0}]"#,
            r#"452-789["upload",{"_placeholder":true,"num":0}]"#,
            "461-15[]",
            "45",
        ] {
            assert_eq!(
                decode_frame(frame),
                Err(SioError::BinaryNotSupported),
                "{frame}"
            );
        }
    }

    #[test]
    fn connect_error_from_a_client_is_refused() {
        assert!(matches!(
            SioPacket::decode(r#"4{"message":"x"}"#),
            Err(SioError::InvalidPayload(_))
        ));
    }

    #[test]
    fn empty_and_unknown_packets_are_refused() {
        assert_eq!(decode_frame("4"), Err(SioError::Empty));
        assert_eq!(SioPacket::decode(""), Err(SioError::Empty));
        assert_eq!(SioPacket::decode("7"), Err(SioError::UnknownType('7')));
        assert_eq!(SioPacket::decode("abc"), Err(SioError::UnknownType('a')));
        assert_eq!(SioPacket::decode("/"), Err(SioError::UnknownType('/')));
    }

    #[test]
    fn control_characters_in_a_namespace_are_refused() {
        assert_eq!(
            SioPacket::decode("0/ad\u{1e}min,"),
            Err(SioError::InvalidNamespace)
        );
        assert_eq!(SioPacket::decode("1/a\nb"), Err(SioError::InvalidNamespace));
    }

    #[test]
    fn several_events_travel_in_one_polling_payload() {
        let frames = [
            event_frame("/", "a", &[json!(1)]),
            event_frame("/", "b", &[json!("\u{1e}")]),
        ];
        let packets = decode_payload(&encode_payload(&frames)).unwrap();
        let decoded: Vec<SioPacket> = packets
            .into_iter()
            .map(|p| match p {
                EioPacket::Message(text) => SioPacket::decode(&text).unwrap(),
                other => panic!("not a message: {other:?}"),
            })
            .collect();
        assert_eq!(
            decoded,
            vec![
                event("/", None, "a", vec![json!(1)]),
                event("/", None, "b", vec![json!("\u{1e}")]),
            ]
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            // Eighths are exact in binary and short in decimal, so they survive the text
            // form without serde_json's `float_roundtrip` feature.
            any::<i32>().prop_map(|n| Value::from(f64::from(n) / 8.0)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn namespace() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(MAIN_NSP.to_owned()),
            "/[^,\\p{Cc}]{0,12}",
            "/[a-z0-9/_-]{1,12}",
        ]
    }

    fn event_name() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-z]{1,8}:[a-zA-Z]{1,8}"]
            .prop_filter("reserved", |name| !is_reserved(name))
    }

    proptest! {
        #[test]
        fn decode_never_panics(text in "\\PC{0,80}") {
            let _ = SioPacket::decode(&text);
        }

        #[test]
        fn decode_never_panics_on_any_chars(text in any::<String>()) {
            let _ = SioPacket::decode(&text);
        }

        #[test]
        fn decode_never_panics_on_near_packets(
            kind in "[0-7]",
            nsp in proptest::option::of("/[^,]{0,6},?"),
            id in "[0-9 a]{0,24}",
            payload in "[\\[\\]{}\",:a-z0-9 -]{0,24}",
        ) {
            let text = format!("{kind}{}{id}{payload}", nsp.unwrap_or_default());
            let _ = SioPacket::decode(&text);
        }

        #[test]
        fn events_round_trip(
            nsp in namespace(),
            name in event_name(),
            ack in proptest::option::of(any::<u64>()),
            args in proptest::collection::vec(json_value(), 0..4),
        ) {
            let expected = SioPacket::Event { nsp: nsp.clone(), ack, name: name.clone(), args: args.clone() };
            let encoded = encode_event(&nsp, &name, &args, ack);
            prop_assert!(!encoded.contains(crate::protocol::engineio::RECORD_SEPARATOR));
            prop_assert_eq!(SioPacket::decode(&encoded), Ok(expected.clone()));
            prop_assert_eq!(expected.encode(), encoded);
        }

        #[test]
        fn event_frames_round_trip_through_engineio(
            nsp in namespace(),
            name in event_name(),
            args in proptest::collection::vec(json_value(), 0..4),
        ) {
            let frame = event_frame(&nsp, &name, &args);
            prop_assert_eq!(decode_frame(&frame), Ok(SioPacket::Event { nsp, ack: None, name, args }));
        }

        #[test]
        fn acks_round_trip(
            nsp in namespace(),
            id in any::<u64>(),
            args in proptest::collection::vec(json_value(), 0..4),
        ) {
            let encoded = encode_ack(&nsp, id, &args);
            prop_assert!(!encoded.contains(crate::protocol::engineio::RECORD_SEPARATOR));
            prop_assert_eq!(SioPacket::decode(&encoded), Ok(SioPacket::Ack { nsp, id, args }));
        }

        #[test]
        fn connects_and_disconnects_round_trip(
            nsp in namespace(),
            auth in proptest::option::of(proptest::collection::btree_map(any::<String>(), json_value(), 0..4)),
        ) {
            let connect = SioPacket::Connect { nsp: nsp.clone(), auth: auth.map(|m| Value::Object(m.into_iter().collect())) };
            prop_assert_eq!(SioPacket::decode(&connect.encode()), Ok(connect));
            prop_assert_eq!(SioPacket::decode(&encode_disconnect(&nsp)), Ok(SioPacket::Disconnect { nsp }));
        }
    }
}
