//! A minimal Socket.IO v5 client over Engine.IO v4 WebSocket, for tests: it answers pings
//! on its own and sorts what arrives into events, acks and control frames.

use futures_util::{SinkExt, StreamExt};
use kanban_protocol::events::{names, EventMeta};
use serde_json::Value;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// Something the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `42[name, ...args]`
    Event(String, Vec<Value>),
    /// `43<id>[...args]`
    Ack(u64, Vec<Value>),
    /// Any other text frame, verbatim.
    Other(String),
    /// The server closed the WebSocket.
    Closed(Option<u16>, String),
}

pub struct Client {
    out: mpsc::UnboundedSender<Message>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// Things read while waiting for something else.
    pending: VecDeque<Incoming>,
    next_ack: u64,
    pub open: Value,
}

const WAIT: Duration = Duration::from_secs(10);

impl Client {
    /// Opens a WebSocket session (`open` packet read) without connecting a namespace.
    pub async fn open(base: &str) -> Client {
        let url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            base.replace("http://", "ws://")
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket handshake");
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let pong = out_tx.clone();
        tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                let incoming = match message {
                    Ok(Message::Text(text)) => {
                        let text = text.to_string();
                        if text == "2" {
                            let _ = pong.send(Message::Text("3".into()));
                            continue;
                        }
                        parse(&text)
                    }
                    Ok(Message::Close(frame)) => closed(frame),
                    Ok(_) => continue,
                    Err(error) => Incoming::Closed(None, error.to_string()),
                };
                let done = matches!(incoming, Incoming::Closed(..));
                if in_tx.send(incoming).is_err() || done {
                    break;
                }
            }
            let _ = in_tx.send(Incoming::Closed(None, "stream ended".into()));
        });
        let mut client = Client {
            out: out_tx,
            incoming: in_rx,
            pending: VecDeque::new(),
            next_ack: 0,
            open: Value::Null,
        };
        match client.next().await {
            Incoming::Other(text) if text.starts_with('0') => {
                client.open = serde_json::from_str(&text[1..]).expect("open packet JSON");
            }
            other => panic!("expected the open packet, got {other:?}"),
        }
        client
    }

    /// Opens a session and connects namespace `/` with `{"token": token}`; returns the
    /// client and the CONNECT reply frame.
    pub async fn connect(base: &str, token: Option<&str>) -> (Client, String) {
        let mut client = Client::open(base).await;
        let auth = token
            .map(|t| serde_json::json!({ "token": t }).to_string())
            .unwrap_or_default();
        client.send_raw(&format!("40{auth}"));
        let reply = client.next_other().await;
        (client, reply)
    }

    /// Connects and asserts the connection was accepted.
    pub async fn connected(base: &str, token: &str) -> Client {
        let (client, reply) = Client::connect(base, Some(token)).await;
        assert!(reply.starts_with("40{\"sid\":"), "connect refused: {reply}");
        client
    }

    pub fn send_raw(&self, text: &str) {
        let _ = self.out.send(Message::Text(text.into()));
    }

    pub fn send_message(&self, message: Message) {
        let _ = self.out.send(message);
    }

    pub fn emit(&self, name: &str, args: &[Value]) {
        let mut array = vec![Value::String(name.to_owned())];
        array.extend_from_slice(args);
        self.send_raw(&format!("42{}", Value::Array(array)));
    }

    /// Emits with an ack id and waits for the ack's first argument.
    pub async fn call(&mut self, name: &str, args: &[Value]) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        let mut array = vec![Value::String(name.to_owned())];
        array.extend_from_slice(args);
        self.send_raw(&format!("42{id}{}", Value::Array(array)));
        self.ack(id).await
    }

    /// Waits for the ack with `id` and returns its first argument.
    pub async fn ack(&mut self, id: u64) -> Value {
        let ack = self
            .wait_for(|i| matches!(i, Incoming::Ack(got, _) if *got == id))
            .await;
        match ack {
            Incoming::Ack(_, mut args) => args.drain(..).next().unwrap_or(Value::Null),
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    pub async fn join(&mut self, project: &str) -> Value {
        self.call("project:join", &[Value::String(project.to_owned())])
            .await
    }

    /// `project:join` with `sinceSeq`: the ack.
    pub async fn resume(&mut self, project: &str, since: i64) -> Value {
        let join = serde_json::json!({"projectId": project, "sinceSeq": since});
        self.call("project:join", &[join]).await
    }

    /// The next thing from the server (pending first).
    pub async fn next(&mut self) -> Incoming {
        if let Some(item) = self.pending.pop_front() {
            return item;
        }
        match tokio::time::timeout(WAIT, self.incoming.recv()).await {
            Ok(Some(item)) => item,
            Ok(None) => Incoming::Closed(None, "client task ended".into()),
            Err(_) => panic!("nothing arrived within {WAIT:?}"),
        }
    }

    async fn next_other(&mut self) -> String {
        match self
            .wait_for(|i| matches!(i, Incoming::Other(_) | Incoming::Closed(..)))
            .await
        {
            Incoming::Other(text) => text,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Waits for the first item matching `want`, keeping the others for later.
    pub async fn wait_for(&mut self, want: impl Fn(&Incoming) -> bool) -> Incoming {
        if let Some(index) = self.pending.iter().position(&want) {
            return self.pending.remove(index).expect("index is in range");
        }
        loop {
            let item = match tokio::time::timeout(WAIT, self.incoming.recv()).await {
                Ok(Some(item)) => item,
                Ok(None) => Incoming::Closed(None, "client task ended".into()),
                Err(_) => panic!("waited {WAIT:?}; pending: {:?}", self.pending),
            };
            if want(&item) {
                return item;
            }
            if let Incoming::Closed(..) = item {
                panic!(
                    "closed while waiting: {item:?}; pending: {:?}",
                    self.pending
                );
            }
            self.pending.push_back(item);
        }
    }

    /// The next `count` board events, in arrival order. Presence announcements, hints,
    /// resyncs and errors that arrive meanwhile are kept for later `wait_for`s.
    pub async fn events(&mut self, count: usize) -> Vec<BoardEvent> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let item = self.wait_for(is_board_event).await;
            out.push(BoardEvent::from_incoming(item));
        }
        out
    }

    /// Everything that arrives within `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Incoming> {
        let mut out: Vec<Incoming> = self.pending.drain(..).collect();
        while let Ok(Some(item)) = tokio::time::timeout(quiet, self.incoming.recv()).await {
            let done = matches!(item, Incoming::Closed(..));
            out.push(item);
            if done {
                break;
            }
        }
        out
    }

    /// Waits until the server closes the connection; returns the close code and reason.
    pub async fn closed(&mut self) -> (Option<u16>, String) {
        match self.wait_for(|i| matches!(i, Incoming::Closed(..))).await {
            Incoming::Closed(code, reason) => (code, reason),
            _ => unreachable!(),
        }
    }

    /// Closes the WebSocket from the client side.
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }
}

/// The events the gateway relays from a board's committed event log: each carries a
/// meta with its seq. Everything else the server emits (`room:userJoined`, `ticket:hint`,
/// `project:resync`, `error`) is ephemeral and has no seq.
pub const BOARD_EVENT_NAMES: &[&str] = &[
    names::TICKET_CREATED,
    names::TICKET_UPDATED,
    names::TICKET_MOVED,
    names::TICKET_DELETED,
    names::PROJECT_UPDATED,
    names::PROJECT_DELETED,
    names::MEMBER_ADDED,
    names::MEMBER_REMOVED,
    names::COLUMN_REBALANCED,
];

/// One committed board event as a client receives it: `42[name, data, meta]`.
#[derive(Debug, Clone)]
pub struct BoardEvent {
    pub name: String,
    pub data: Value,
    pub meta: EventMeta,
}

impl BoardEvent {
    /// Panics unless `item` is a board event with a well-formed meta: a board event
    /// without its seq is a protocol violation, not something to skip.
    pub fn from_incoming(item: Incoming) -> BoardEvent {
        let Incoming::Event(name, args) = item else {
            panic!("not an event: {item:?}");
        };
        let data = args.first().cloned().unwrap_or(Value::Null);
        let meta = args
            .get(1)
            .cloned()
            .and_then(|meta| serde_json::from_value::<EventMeta>(meta).ok())
            .unwrap_or_else(|| panic!("board event {name} without a valid meta: {args:?}"));
        BoardEvent { name, data, meta }
    }
}

/// The seqs of `events`, in order.
pub fn seqs(events: &[BoardEvent]) -> Vec<i64> {
    events.iter().map(|event| event.meta.seq).collect()
}

/// A board event (one of [`BOARD_EVENT_NAMES`]), not a presence announcement, hint,
/// resync or error.
pub fn is_board_event(item: &Incoming) -> bool {
    matches!(item, Incoming::Event(name, _) if BOARD_EVENT_NAMES.contains(&name.as_str()))
}

/// An event named `name`.
pub fn is_event(item: &Incoming, name: &str) -> bool {
    matches!(item, Incoming::Event(got, _) if got == name)
}

/// A presence announcement (`room:userJoined` / `room:userLeft`).
pub fn is_presence(item: &Incoming) -> bool {
    is_event(item, names::ROOM_USER_JOINED) || is_event(item, names::ROOM_USER_LEFT)
}

fn closed(frame: Option<CloseFrame>) -> Incoming {
    match frame {
        Some(frame) => Incoming::Closed(Some(u16::from(frame.code)), frame.reason.to_string()),
        None => Incoming::Closed(None, String::new()),
    }
}

fn parse(text: &str) -> Incoming {
    if let Some(rest) = text.strip_prefix("42") {
        if let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(rest) {
            if let Some(Value::String(name)) = items.first().cloned() {
                items.remove(0);
                return Incoming::Event(name, items);
            }
        }
    }
    if let Some(rest) = text.strip_prefix("43") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let (Ok(id), Ok(Value::Array(args))) =
            (digits.parse(), serde_json::from_str(&rest[digits.len()..]))
        {
            return Incoming::Ack(id, args);
        }
    }
    Incoming::Other(text.to_owned())
}
