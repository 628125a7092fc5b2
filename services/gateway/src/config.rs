//! The gateway's typed settings, loaded in layers by `kanban_config`.

use kanban_auth::AuthSettings;
use kanban_telemetry::trace::TraceSettings;
use kanban_telemetry::LogSettings;
use serde::Deserialize;

/// Shared with the ticket API, which must agree on `key_prefix`.
pub use kanban_config::RedisSettings;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Settings {
    pub http: HttpSettings,
    pub engine: EngineSettings,
    pub limits: LimitSettings,
    pub api: ApiSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub gateway: GatewaySettings,
    pub log: LogSettings,
    /// OpenTelemetry trace export (off unless `trace.endpoint` is set).
    pub trace: TraceSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    pub workers: Option<usize>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            host: "127.0.0.1".into(),
            port: 3000,
            workers: None,
        }
    }
}

/// Engine.IO / Socket.IO timing and size limits (the values go into the `open` packet).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EngineSettings {
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    /// A session that sends no Socket.IO CONNECT within this time is closed.
    pub connect_timeout_ms: u64,
    /// Largest accepted WebSocket message or polling POST body, in bytes.
    pub max_payload: usize,
    /// A polling → WebSocket upgrade must complete within this time.
    pub upgrade_timeout_ms: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            connect_timeout_ms: 45_000,
            max_payload: 1_000_000,
            upgrade_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitSettings {
    /// Open sessions per replica; further handshakes get 503.
    pub max_connections: usize,
    /// Project rooms one socket may be in at once.
    pub max_rooms_per_socket: usize,
    /// Sustained client events per second per socket (token bucket refill rate).
    pub events_per_second: f64,
    /// Token bucket size: how many events a socket may send in a burst.
    pub event_burst: f64,
    /// Frames queued for one socket before it counts as a slow consumer and is closed.
    pub outbound_queue: usize,
    /// A WebSocket write that does not complete in this time closes the socket as slow.
    pub write_timeout_ms: u64,
    /// `SO_SNDBUF` of every accepted connection, in bytes (0: the kernel's autotuning,
    /// up to several MB per socket). It bounds what a client that stops reading can hold
    /// in the kernel and so how soon its writes stall and it is detected as slow.
    pub socket_send_buffer_bytes: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_connections: 20_000,
            max_rooms_per_socket: 16,
            events_per_second: 20.0,
            event_burst: 40.0,
            outbound_queue: 512,
            write_timeout_ms: 5_000,
            socket_send_buffer_bytes: 64 * 1024,
        }
    }
}

/// How the gateway reaches the ticket API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ApiSettings {
    pub base_url: String,
    pub timeout_ms: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            base_url: "http://127.0.0.1:8080".into(),
            timeout_ms: 5_000,
        }
    }
}

/// What this gateway serves and how it behaves at the edges.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GatewaySettings {
    /// `kanban` (the board protocol) or `echo` (the handlers the official Socket.IO
    /// conformance suite expects; for protocol testing only).
    pub mode: Mode,
    /// Accept sockets without a token (local development only). Anonymous sockets may
    /// join any board and may not send commands.
    pub allow_anonymous: bool,
    /// Browser origins allowed to connect besides the page's own (an Origin whose
    /// host:port equals the request's Host); `*` allows any origin but then never with
    /// credentials. Non-browser clients, which send no Origin, are always allowed.
    pub allowed_origins: Vec<String>,
    /// On SIGTERM, sockets are closed at random moments spread over this window so that
    /// clients reconnect to other replicas gradually.
    pub drain_window_ms: u64,
    /// Prefix of this replica's Engine.IO session ids (`<instance_id>~<random>`), so a load
    /// balancer can route a long-polling session's requests to the replica that holds it
    /// (see docs/PROTOCOL.md). Letters, digits, `-` and `_` only; empty for none.
    pub instance_id: String,
    /// Presence announcements per room are coalesced to at most one per this interval.
    pub presence_interval_ms: u64,
    /// A replica's presence disappears this long after its last heartbeat (crash safety).
    pub presence_ttl_ms: u64,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            mode: Mode::Kanban,
            allow_anonymous: false,
            allowed_origins: Vec::new(),
            drain_window_ms: 10_000,
            instance_id: String::new(),
            presence_interval_ms: 250,
            presence_ttl_ms: 6_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Kanban,
    Echo,
}

impl Settings {
    /// The settings the official Socket.IO conformance suite expects (`echo` mode on
    /// localhost:3000, pingInterval 300, pingTimeout 200, connectTimeout 1000, maxPayload 1e6).
    pub fn conformance() -> Settings {
        let mut settings = Settings::default();
        settings.http.port = 3000;
        settings.engine.ping_interval_ms = 300;
        settings.engine.ping_timeout_ms = 200;
        settings.engine.connect_timeout_ms = 1_000;
        settings.engine.max_payload = 1_000_000;
        settings.gateway.mode = Mode::Echo;
        settings.gateway.allow_anonymous = true;
        settings
    }
}
