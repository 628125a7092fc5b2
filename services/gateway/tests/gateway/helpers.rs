//! Starts a real ticket API and gateways in-process on port 0, sharing one test database
//! and one Redis key prefix, and talks to the API over HTTP.

use gateway::{Application, Shutdown};
use kanban_auth::{AuthSettings, TokenVerifier};
use kanban_test_support::TestDatabase;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SECRET: &str = "gateway-test-secret-that-is-long-enough-0123456789";

pub fn redis_url() -> String {
    std::env::var("KANBAN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn auth() -> AuthSettings {
    AuthSettings {
        jwt_secret: SecretString::from(SECRET.to_owned()),
        dev_tokens: true,
        ..AuthSettings::default()
    }
}

pub struct GatewayHandle {
    pub address: String,
    pub shutdown: Shutdown,
}

pub struct Stack {
    pub api: String,
    pub prefix: String,
    pub redis_url: String,
    pub gateways: Vec<GatewayHandle>,
    pub http: reqwest::Client,
    verifier: TokenVerifier,
    _db: Arc<TestDatabase>,
}

pub async fn stack(gateways: usize) -> Stack {
    stack_with(gateways, |_| {}).await
}

/// An API and `gateways` gateways; `tweak` adjusts each gateway's settings.
pub async fn stack_with(gateways: usize, tweak: impl Fn(&mut gateway::Settings)) -> Stack {
    stack_on(redis_url(), gateways, tweak).await
}

/// Like [`stack_with`], on the Redis server at `redis`.
pub async fn stack_on(
    redis: String,
    gateways: usize,
    tweak: impl Fn(&mut gateway::Settings),
) -> Stack {
    let db = TestDatabase::create(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../ticket-api/migrations"
        )),
        |url| async move { ticket_api::db::run_migrations(&url).await.map(drop) },
    )
    .await;
    let prefix = kanban_test_support::redis_prefix();
    let mut settings = ticket_api::Settings::default();
    settings.http.port = 0;
    settings.http.workers = Some(2);
    settings.database.url = SecretString::from(db.url.clone());
    settings.database.migrate_on_start = false;
    settings.redis.url = SecretString::from(redis.clone());
    settings.redis.key_prefix = prefix.clone();
    settings.relay.leader_retry_ms = 100;
    settings.auth = auth();
    let api = ticket_api::Application::build(settings)
        .await
        .expect("build the API");
    let api_url = format!("http://127.0.0.1:{}", api.port());
    tokio::spawn(api.run_until_stopped());
    let mut stack = Stack {
        api: api_url,
        prefix,
        redis_url: redis,
        gateways: Vec::new(),
        http: kanban_test_support::http(),
        verifier: TokenVerifier::from_settings(&auth()).expect("verifier"),
        _db: Arc::new(db),
    };
    for _ in 0..gateways {
        stack.add_gateway(&tweak).await;
    }
    stack
}

impl Stack {
    pub fn gateway_settings(&self) -> gateway::Settings {
        let mut settings = gateway::Settings::default();
        settings.http.port = 0;
        settings.http.workers = Some(2);
        settings.api.base_url = self.api.clone();
        settings.redis.url = SecretString::from(self.redis_url.clone());
        settings.redis.key_prefix = self.prefix.clone();
        settings.auth = auth();
        settings.gateway.drain_window_ms = 300;
        settings
    }

    pub async fn add_gateway(&mut self, tweak: &dyn Fn(&mut gateway::Settings)) -> usize {
        let mut settings = self.gateway_settings();
        tweak(&mut settings);
        let app = Application::build(settings).await.expect("build a gateway");
        let address = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown();
        tokio::spawn(app.run_until_stopped());
        self.gateways.push(GatewayHandle { address, shutdown });
        self.gateways.len() - 1
    }

    pub fn gw(&self, index: usize) -> &str {
        &self.gateways[index].address
    }

    pub fn token(&self, user: &str) -> String {
        self.token_for(user, 600)
    }

    /// A token for `user` that expires `ttl_seconds` from now.
    pub fn token_for(&self, user: &str, ttl_seconds: u64) -> String {
        self.verifier
            .issue(user, Some(user), ttl_seconds)
            .expect("token")
    }

    pub async fn api_call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.api, path))
            .bearer_auth(self.token(user));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn create_project(&self, owner: &str, members: &[&str]) -> String {
        let (status, body) = self
            .api_call(
                reqwest::Method::POST,
                "/api/projects",
                owner,
                Some(json!({"name": "Board"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().expect("id").to_owned();
        for member in members {
            let (status, body) = self
                .api_call(
                    reqwest::Method::POST,
                    &format!("/api/projects/{id}/members"),
                    owner,
                    Some(json!({"userId": member, "role": "member"})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        id
    }

    pub async fn create_ticket(&self, project: &str, user: &str, title: &str) -> Value {
        let (status, body) = self
            .api_call(
                reqwest::Method::POST,
                &format!("/api/projects/{project}/tickets"),
                user,
                Some(json!({"title": title})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    pub async fn move_ticket(&self, ticket: &str, user: &str, to: &str, position: i64) -> Value {
        let (status, body) = self
            .api_call(
                reqwest::Method::POST,
                &format!("/api/tickets/{ticket}/move"),
                user,
                Some(json!({"toStatus": to, "position": position})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits (under a deadline) until the relay has written the board's history up to
    /// and including `seq`.
    pub async fn history_reaches(&self, project: &str, seq: i64) {
        let mut redis = self.redis().await;
        let key = kanban_protocol::redis_keys::history(&self.prefix, project);
        let deadline = Instant::now() + WAIT;
        loop {
            let last: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
                .arg(&key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut redis)
                .await
                .unwrap_or_default();
            let newest = last
                .first()
                .and_then(|(id, _)| id.split('-').next()?.parse::<i64>().ok());
            if newest.is_some_and(|newest| newest >= seq) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "history of {project} never reached seq {seq} (newest: {newest:?})"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// A Redis connection on the test's server (for inspecting or disturbing the layout).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.clone())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

/// How long a test waits for something that should happen before it fails.
pub const WAIT: Duration = Duration::from_secs(10);
/// How often a condition is polled while waiting for it.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `base`'s metric `name` until `want` holds; returns the value. Fails after [`WAIT`].
pub async fn metric_until(base: &str, name: &str, want: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = metric(base, name).await;
        if want(value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{name} at {base} is {value} after {WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

pub async fn metric(base: &str, name: &str) -> f64 {
    let text = kanban_test_support::http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    kanban_test_support::metric_value(&text, name)
}
